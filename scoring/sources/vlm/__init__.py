"""Vision-language models scoring on the rubric: the shared prompt/parse/retry logic (`base`),
one module per runtime (transformers, llama.cpp, an OpenAI-compatible server) and their
helpers (GGUF headers and mmproj pairing, model folders, constrained JSON decoding)."""
