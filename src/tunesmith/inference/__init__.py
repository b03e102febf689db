"""Models ready to answer: loading for chat, eval, export and serve (the layer above train, below them)."""
