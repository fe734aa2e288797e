"""What every part shares: the params schema, stage paths, atomic files, errors, the CLI."""
