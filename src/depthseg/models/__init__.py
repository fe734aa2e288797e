"""DSResNet, and the form in which MLflow serves it."""
