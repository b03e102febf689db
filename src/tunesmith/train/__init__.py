"""Training: one short workflow per stage on top of transformers' Trainer, plus the CPU fast path."""
