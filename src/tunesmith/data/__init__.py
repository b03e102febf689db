"""Data: read files, detect formats, the dataset registry, chat templates, tokenization, checks, splits."""
