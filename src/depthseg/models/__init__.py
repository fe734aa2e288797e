"""The networks (DSResNet, the original's MaskNet), and the form in which MLflow serves them."""
