"""How long `tunesmith --help` and a config typo take to answer (start-up is import time).

The test suite checks that neither imports torch, transformers or the other heavy libraries
(tests/unit/cli/test_cli.py); this script measures the seconds, which depend on the machine.

    python benchmarks/cli_startup.py            # median of 5 runs each
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tunesmith.cli.main", *args], capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        typo = Path(tmp) / "typo.yaml"
        typo.write_text("dataset: x\nlearnin_rate: 1e-4\n")
        for name, args in (("tunesmith --help", ["--help"]), ("a config typo", ["train", str(typo)])):
            print(f"{name}: {seconds(args, runs):.2f}s (median of {runs})")


if __name__ == "__main__":
    main()
