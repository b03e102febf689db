"""tunesmith: from a folder of examples to a fine-tuned, evaluated, exported and served LLM.

Import cost matters (a config typo should be reported in well under a second), so this package
imports nothing heavy at the top level: torch, transformers and friends are imported inside the
functions that need them.
"""

__version__ = "0.1.0"
