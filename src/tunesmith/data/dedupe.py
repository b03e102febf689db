"""Exact and near-duplicate detection for datasets of tens of thousands of examples.

Exact duplicates compare normalized text (case, width and punctuation folded). Near duplicates
compare sets of character n-grams ("shingles") by Jaccard similarity, found without comparing every
pair: each text gets a MinHash signature (all texts in one vectorized numpy pass), signatures are cut
into LSH bands, texts sharing a band become candidates, and only candidates are checked with their
exact Jaccard similarity. Cost grows about linearly with the number of examples.

Character n-grams work the same for Chinese (no word boundaries) and English.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tunesmith.data.records import Example, PreferenceExample, SFTExample, TextExample

Field = Literal["prompt", "response", "full"]
_SPACES = re.compile(r"\s+")
_MASK32 = np.uint64(0xFFFFFFFF)


@functools.lru_cache(maxsize=1)
def _punctuation_to_space() -> dict[int, str]:
    """str.translate table: every punctuation character of the Basic Multilingual Plane -> space.
    Symbols (+ - × = $ ...) are kept: '5 + 6' and '5 × 6' are different questions."""
    return {c: " " for c in range(0x10000) if unicodedata.category(chr(c)).startswith("P")}


def normalize(text: str) -> str:
    """Fold width and case, turn punctuation and whitespace runs into one space."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_punctuation_to_space())
    return _SPACES.sub(" ", text).strip()


def example_text(ex: Example, part: Field = "full") -> str:
    """The text of an example to compare: the prompt (user turns), the response, or everything."""
    if isinstance(ex, TextExample):
        return ex.text
    before = ex.prompt_messages if isinstance(ex, SFTExample) else ex.messages
    prompt = "\n".join(m.content for m in before if m.role != "assistant")
    history = "\n".join(m.content for m in before if m.role == "assistant")
    if isinstance(ex, SFTExample):
        response = ex.response
    elif isinstance(ex, PreferenceExample):
        response = f"{ex.chosen}\n{ex.rejected}"
    else:
        response = ex.completion
    if part == "prompt":
        return prompt
    if part == "response":
        return response
    return "\n".join(t for t in (ex.system or "", prompt, history, response) if t)


def shingles(text: str, n: int = 5) -> set[str]:
    """Character n-grams of the normalized text (the whole text when shorter than n)."""
    t = normalize(text)
    if len(t) <= n:
        return {t} if t else set()
    return {t[i:i + n] for i in range(len(t) - n + 1)}


@dataclass
class Shingled:
    """Hashed character n-grams of many texts: text i owns ``hashes[offsets[i]:offsets[i + 1]]``
    (sorted, unique, uint32)."""

    hashes: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def of(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i]:self.offsets[i + 1]]


_BASE = np.uint64(1_000_003)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def shingle_hashes(texts: list[str], n: int = 5) -> Shingled:
    """Hash every character n-gram of every normalized text in a few numpy passes.

    The texts are concatenated as code points; a polynomial hash of each window of n code points is
    computed for all windows at once, windows that cross a text boundary are dropped, and texts
    shorter than n count as one n-gram (their crc32).
    """
    norm = [normalize(t) for t in texts]
    if not norm:
        return Shingled(np.zeros(0, np.uint32), np.zeros(1, np.int64))
    lengths = np.fromiter((len(t) for t in norm), dtype=np.int64, count=len(norm))
    codes = np.frombuffer("".join(norm).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    counts = np.maximum(lengths - n + 1, 0)  # windows per text
    starts = np.cumsum(lengths) - lengths
    windows_before = np.cumsum(counts) - counts
    with np.errstate(over="ignore"):
        h = np.zeros(max(len(codes) - n + 1, 0), dtype=np.uint64)
        for k in range(n):
            h = h * _BASE + codes[k:len(codes) - n + 1 + k]
        # window j of text d starts at starts[d] + j in the concatenation
        where = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - windows_before, counts)
        hashed = (h[where] * _MIX) >> np.uint64(32)
    doc = np.repeat(np.arange(len(norm), dtype=np.uint64), counts)
    short = [i for i, t in enumerate(norm) if 0 < len(t) < n]
    if short:
        doc = np.concatenate((doc, np.asarray(short, dtype=np.uint64)))
        extra = [zlib.crc32(norm[i].encode("utf-8")) for i in short]
        hashed = np.concatenate((hashed, np.asarray(extra, dtype=np.uint64)))
    keys = np.sort((doc << np.uint64(32)) | hashed)  # np.unique is ~10x slower here (numpy 2.4)
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    owners = (keys >> np.uint64(32)).astype(np.int64)
    offsets = np.searchsorted(owners, np.arange(len(norm) + 1), side="left")
    return Shingled((keys & _MASK32).astype(np.uint32), offsets)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def minhash_signatures(sh: Shingled, num_perm: int = 128, seed: int = 1, chunk: int = 1 << 14) -> np.ndarray:
    """One MinHash signature per text, shape (texts, num_perm), uint32.

    The permutations are multiply-shift hashes ``(a * x + b) >> 32`` in 64-bit arithmetic, applied
    to a chunk of n-grams of many texts at once. Texts without n-grams keep all-ones signatures.
    """
    rng = np.random.default_rng(seed)
    a = (rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1))[:, None]
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)[:, None]
    out = np.full((len(sh), num_perm), 0xFFFFFFFF, dtype=np.uint32)
    nonempty = np.flatnonzero(np.diff(sh.offsets) > 0)
    buf = np.empty((num_perm, chunk), dtype=np.uint64)
    i = 0
    while i < len(nonempty):
        lo = sh.offsets[nonempty[i]]
        # as many whole texts as fit in the buffer (at least one, however long)
        j = max(i + 1, int(np.searchsorted(sh.offsets[nonempty + 1], lo + chunk, side="right")))
        docs = nonempty[i:j]
        hi = sh.offsets[docs[-1] + 1]
        x = sh.hashes[lo:hi].astype(np.uint64)[None, :]
        work = buf[:, :hi - lo] if hi - lo <= chunk else np.empty((num_perm, hi - lo), dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.multiply(a, x, out=work)
            np.add(work, b, out=work)
        np.right_shift(work, np.uint64(32), out=work)
        out[docs] = np.minimum.reduceat(work, sh.offsets[docs] - lo, axis=1).T.astype(np.uint32)
        i = j
    return out


def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for a Jaccard threshold: the LSH curve's midpoint (1/b)^(1/r) sits ~0.1 below it,
    so near-threshold pairs are almost always proposed (then checked exactly)."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        if (1 / bands) ** (1 / rows) <= max(0.05, threshold - 0.1):
            best = (bands, rows)
    return best


class NearDuplicateIndex:
    """A MinHash-LSH index of texts; ``query`` returns indexed texts with Jaccard >= threshold."""

    def __init__(self, threshold: float = 0.85, *, ngram: int = 5, num_perm: int = 128, seed: int = 1) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold, self.ngram, self.num_perm, self.seed = threshold, ngram, num_perm, seed
        self.bands, self.rows = lsh_shape(threshold, num_perm)
        self.buckets: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
        self.sets: dict[int, np.ndarray] = {}

    def prepare(self, texts: list[str]) -> tuple[Shingled, list[list[int]]]:
        """N-gram hashes and LSH band keys for many texts (vectorized)."""
        sh = shingle_hashes(texts, self.ngram)
        sig = minhash_signatures(sh, self.num_perm, self.seed).astype(np.uint64)
        coeff = np.random.default_rng(self.seed + 1).integers(1, 2**63, size=self.rows, dtype=np.uint64) | np.uint64(1)
        with np.errstate(over="ignore"):
            keys = (sig.reshape(len(sh), self.bands, self.rows) * coeff).sum(axis=2, dtype=np.uint64)
        return sh, keys.tolist()

    def add(self, key: int, hashes: np.ndarray, bands: list[int]) -> None:
        if not len(hashes):
            return
        self.sets[key] = hashes
        for band, k in enumerate(bands):
            self.buckets[band].setdefault(k, []).append(key)

    def query(self, hashes: np.ndarray, bands: list[int], *, best_only: bool = True) -> list[tuple[int, float]]:
        """Indexed keys whose Jaccard similarity reaches the threshold, most similar first."""
        if not len(hashes):
            return []
        seen: set[int] = set()
        hits: list[tuple[int, float]] = []
        for band, k in enumerate(bands):
            for key in self.buckets[band].get(k, ()):
                if key in seen:
                    continue
                seen.add(key)
                sim = jaccard(hashes, self.sets[key])
                if sim >= self.threshold:
                    hits.append((key, sim))
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:1] if best_only else hits


@dataclass
class DuplicateGroup:
    """One kept item and the items that duplicate it: (index, similarity, 'exact' | 'near')."""

    keep: int
    duplicates: list[tuple[int, float, str]] = field(default_factory=list)


@dataclass
class DedupeResult:
    """Which items to keep and why the others go."""

    kept: list[int]
    groups: list[DuplicateGroup]

    @property
    def n_exact(self) -> int:
        return sum(1 for g in self.groups for d in g.duplicates if d[2] == "exact")

    @property
    def n_near(self) -> int:
        return sum(1 for g in self.groups for d in g.duplicates if d[2] == "near")


def find_duplicates(texts: list[str], *, threshold: float = 0.85, near: bool = True, ngram: int = 5,
                    num_perm: int = 128) -> DedupeResult:
    """Keep the first of every group of exact or near duplicates (Jaccard of character n-grams)."""
    keys = [normalize(t) for t in texts]
    first_of: dict[str, int] = {}
    unique = [i for i, k in enumerate(keys) if first_of.setdefault(k, i) == i]
    index = NearDuplicateIndex(threshold, ngram=ngram, num_perm=num_perm) if near else None
    sh, bands = index.prepare([texts[i] for i in unique]) if index else (None, [])
    row = {i: j for j, i in enumerate(unique)}
    # normalized text -> (kept index it duplicates, similarity, kind); kept texts map to themselves
    verdict: dict[str, tuple[int, float, str]] = {}
    groups: dict[int, DuplicateGroup] = {}
    kept: list[int] = []
    for i, key in enumerate(keys):
        if key in verdict:
            keep, sim, kind = verdict[key]
            groups.setdefault(keep, DuplicateGroup(keep)).duplicates.append((i, sim, kind))
            continue
        hit = index.query(sh.of(row[i]), bands[row[i]]) if index and sh else []
        if hit:
            keep, sim = hit[0]
            verdict[key] = (keep, sim, "near")
            groups.setdefault(keep, DuplicateGroup(keep)).duplicates.append((i, sim, "near"))
            continue
        if index and sh:
            index.add(i, sh.of(row[i]), bands[row[i]])
        verdict[key] = (i, 1.0, "exact")
        kept.append(i)
    return DedupeResult(kept, [groups[k] for k in sorted(groups)])
