"""Evaluation: batched predictions, metrics, comparisons, judges, benchmarks and curve diagnosis."""
