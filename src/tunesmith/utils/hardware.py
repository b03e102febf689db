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


# oneDNN instruction-set caps (ONEDNN_MAX_CPU_ISA) below which its bf16 matmuls are emulated.
_ONEDNN_NO_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


def isa_caps() -> dict[str, str]:
    """The instruction-set limits set in the environment that torch's CPU kernels obey."""
    names = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
             "FBGEMM_ENABLE_INSTRUCTIONS")
    return {n: os.environ[n] for n in names if os.environ.get(n)}


def cpu_supports_bf16() -> bool:
    """bf16 matmuls are fast on CPUs with AVX-512 BF16 or AMX; elsewhere they are emulated and slow.

    A cap on oneDNN's instruction set (``ONEDNN_MAX_CPU_ISA=AVX2``, which runs bf16 matmuls on
    AVX2 code, or ``ATEN_CPU_CAPABILITY=avx2``) counts as not having it: bf16 matmuls then ran at
    ~0 GFLOP/s here against ~30 for fp32.
    """
    if not {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return False
    caps = isa_caps()
    onednn = (caps.get("ONEDNN_MAX_CPU_ISA") or caps.get("DNNL_MAX_CPU_ISA") or "").upper()
    aten = caps.get("ATEN_CPU_CAPABILITY", "").lower()
    return onednn not in _ONEDNN_NO_BF16 and aten not in ("default", "avx2")


def cpu_class() -> str:
    """A short name for what this CPU computes fastest, as figures are quoted ("AMX bf16", "AVX2 fp32")."""
    flags = cpu_flags()
    if cpu_supports_bf16():
        return "AMX bf16" if "amx_bf16" in flags else "AVX-512-BF16"
    caps = isa_caps()
    if caps and {"avx512_bf16", "amx_bf16"} & flags:
        return f"fp32, bf16 disabled by {', '.join(f'{k}={v}' for k, v in caps.items())}"
    return "AVX-512 fp32" if "avx512f" in flags else ("AVX2 fp32" if "avx2" in flags else "fp32")


def bf16_available() -> bool:
    """Whether to train in bf16 by default on this machine (GPU with bf16, or a bf16-capable CPU)."""
    if has_cuda():
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def resolve_bf16(setting: bool | None) -> tuple[bool, str]:
    """Whether to compute in bf16 for a ``bf16`` setting (None = auto), and the reason to print.

    ``bf16: true`` (LLaMA-Factory's example configs all set it) on a CPU without bf16 is refused in
    favour of fp32: the bf16 weights most checkpoints ship would otherwise be computed in emulated
    bf16, whose first LoRA step had not finished after 5 minutes where fp32 took ~4 s (measured with
    LLaMA-Factory 0.9.5 on an AVX2-only AMD Zen 3).
    """
    if has_cuda():
        import torch

        ok = torch.cuda.is_bf16_supported()
        if setting is None:
            return ok, "bf16: auto (GPU " + ("supports" if ok else "lacks") + " bf16)"
        return setting, f"bf16={str(setting).lower()}"
    ok = cpu_supports_bf16()
    if setting is False:
        return False, "bf16=false"
    if ok:
        return True, f"bf16={'true' if setting else 'auto'} ({cpu_class()})"
    why = f"this CPU has no AVX-512-BF16 / AMX ({cpu_class()}): bf16 would be emulated, many times slower"
    if setting:
        return False, f"bf16=true refused: {why}; weights are loaded and computed in fp32"
    return False, f"bf16: auto -> fp32 ({why}); weights are loaded in fp32"


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


def cpu_ticks() -> tuple[int, int] | None:
    """All CPUs' (total, idle + iowait) ticks since boot from Linux /proc/stat, else None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)
    except (OSError, ValueError, IndexError):
        return None


def busy_share(seconds: float = 0.1) -> float | None:
    """Share of all CPU time used by running work over a short window (Linux /proc/stat), else None."""
    import time

    first = cpu_ticks()
    time.sleep(seconds)
    second = cpu_ticks()
    if first is None or second is None:
        return None
    return 1 - (second[1] - first[1]) / max(1, second[0] - first[0])


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
