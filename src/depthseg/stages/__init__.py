"""The DVC stages as functions: fetch, index, train, evaluate; src/*.py only parse arguments."""
