"""Export: merge an adapter into its base, quantize (int8, GGUF), and check every artifact.

``run.py`` is the workflow (``tunesmith export``); ``merge.py`` writes the merged Hugging Face
folder, ``quantize.py`` the int8 folder (and the guarded GPU formats), ``gguf.py`` llama.cpp's GGUF
files, and ``checks.py`` the parity checks that end every export.
"""
