"""What this machine has: the memory policy interface, ONNX runtimes, model downloads, and
the doctor that reports them."""
