"""Using a trained model: images in and out, prediction, the MLflow image model, ONNX export."""
