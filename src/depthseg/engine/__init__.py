"""The training engine: compute setup, the loop, checkpoints, evaluation, previews."""
