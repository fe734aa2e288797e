"""DVC experiments driven through the dvc command line: queue, run, compare."""
