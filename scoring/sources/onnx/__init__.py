"""ONNX Runtime sources (NudeNet, WD v3, CL Tagger v2) and their helpers: the shared session
cache, CUDA provider facts and where tagger files are."""
