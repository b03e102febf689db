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


def openmp_wait_policy(load: float | None = None, cores: int | None = None) -> str | None:
    """The OpenMP wait policy to start with: PASSIVE when the machine is already busy, else the default.

    Measured on 2 cores with a LoRA step of the bundled model: idle, spinning threads (the OpenMP
    default) take 0.92 s/step and passive ones 1.3 s (every small op pays a thread wake-up); with two
    other busy processes, spinning takes 2.7-3 s/step and passive 1.5 s. So: passive only when the
    1-minute load average already reaches half the cores when the command starts.
    """
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return None
    cores = cores or os.cpu_count() or 1
    return "PASSIVE" if load >= cores / 2 else None

