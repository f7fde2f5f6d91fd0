"""Real parts the tests run: a llama.cpp built from source, the PyPI-shipped Gemma 3 270M GGUF."""
