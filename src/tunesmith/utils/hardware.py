"""What this machine can do: bf16 support, core count, memory. Read once, used by train and advise."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty on systems without it)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_cuda() -> bool:
    """True when a CUDA device is usable (imports torch)."""
    import torch

    return torch.cuda.is_available()


def cpu_supports_bf16() -> bool:
    """bf16 matmuls are fast on CPUs with AVX-512 BF16 or AMX; elsewhere they are emulated and slow."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def bf16_available() -> bool:
    """Whether to train in bf16 by default on this machine (GPU with bf16, or a bf16-capable CPU)."""
    if has_cuda():
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def physical_cores() -> int:
    """Cores we may use (respects the process's CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def total_memory_gb() -> float:
    """Physical memory in GiB."""
    import psutil

    return psutil.virtual_memory().total / 2**30


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_memory() -> None:
    """Return freed memory to the OS (the tokenizer of a 262k-vocabulary model holds ~300 MB)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def busy_share(seconds: float = 0.1) -> float | None:
    """Share of all CPU time used by running work over a short window (Linux /proc/stat), else None."""
    import time

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def openmp_wait_policy(busy: float | None = None) -> str | None:
    """The OpenMP wait policy to start with: PASSIVE when the machine is already busy, else the default.

    Measured on 2 cores with a LoRA step of the bundled model: idle, spinning threads (the OpenMP
    default) take 0.92 s/step and passive ones 1.3 s (every small op pays a thread wake-up); with two
    other busy processes, spinning takes 2.7-3 s/step and passive 1.5 s. So: passive only when other
    work already uses half of the CPU time as the command starts (sampled for 0.1 s; the load average
    would still count a command that just ended).
    """
    if busy is None:
        busy = busy_share()
    if busy is None:
        try:
            busy = os.getloadavg()[0] / (os.cpu_count() or 1)
        except OSError:
            return None
    return "PASSIVE" if busy >= 0.5 else None
