"""Model builders for the tests (tiny ONNX stand-ins with the real I/O contracts)."""
