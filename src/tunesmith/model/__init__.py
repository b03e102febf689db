"""Model: find and load models (bundled, local, GGUF, hub), adapters, generation."""
