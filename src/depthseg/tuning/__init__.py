"""Optuna studies: storage, trials (real short trainings) and their results."""
