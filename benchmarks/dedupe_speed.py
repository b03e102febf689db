"""Near-duplicate search at scale: seconds for N random texts with planted near duplicates.

The test suite checks that the LSH search stays linear (tests/unit/data/test_dedupe.py counts the
candidate pairs); this script measures the time, which depends on the machine.

    python benchmarks/dedupe_speed.py                 # 20,000 texts + 200 planted near duplicates
    python benchmarks/dedupe_speed.py --texts 100000
"""

from __future__ import annotations

import argparse
import random
import time

from tunesmith.data.dedupe import find_duplicates


def make_texts(n: int, planted: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
             "tau upsilon phi chi psi omega 学习 数据 模型 训练 评估").split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))) for _ in range(n)]
    for k in range(planted):
        t = texts[k].split()
        t[rng.randrange(len(t))] = "zzz"
        texts.append(" ".join(t))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--planted", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=0.85)
    args = parser.parse_args()
    texts = make_texts(args.texts, args.planted)
    t0 = time.perf_counter()
    result = find_duplicates(texts, threshold=args.threshold)
    took = time.perf_counter() - t0
    print(f"{len(texts)} texts: {took:.1f}s, {result.n_near} near and {result.n_exact} exact duplicates found")


if __name__ == "__main__":
    main()
