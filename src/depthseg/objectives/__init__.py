"""Losses and metrics: pure functions of tensors."""
