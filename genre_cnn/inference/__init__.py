"""Using a trained model: prediction with PyTorch or ONNX Runtime, the ONNX export and the Python API. Never
imports genre_cnn.training."""
