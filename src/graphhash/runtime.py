"""Where and how work runs: the device and its DataLoader workers, mixed precision, the allocator, torch's threads.

torch is imported inside the functions that need it, so that the stages that need none (prepare) start without it.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from graphhash.errors import GraphhashError

if TYPE_CHECKING:
    import torch

# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS after every batch.

    By default glibc serves large blocks (the activations of a CNN batch, tens of MB) with mmap and gives
    them back at free, so every batch page-faults its buffers in again: on CPU that kernel time cost more
    than the convolutions themselves (EfficientNet-Lite0 at 160 px, batch 64, 2 cores: 54 -> 140 images/s,
    see bench/extract_throughput.py). Raising both thresholds makes freed blocks reusable; peak memory is
    unchanged, the process just keeps it. Returns True when applied (Linux with glibc), False elsewhere.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    one_gib = 1 << 30
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, one_gib)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, one_gib))


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread inside the block.

    Training on graphs of ten nodes is thousands of tiny operations per second; splitting each across
    threads costs more in hand-offs than it saves, and when another process holds a core it stalls every
    operation (2 cores, 2,000 nodes of 1280-d, one graph per step: 2.6 ms per step on one thread, 13-99 ms
    on two with another process running).
    """
    import torch  # here: prepare, and baselines without bihalf or greedyhash, start without loading it

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_device(requested: str, key: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; asking for CUDA without one is an error naming ``key`` (the
    param that asked, e.g. ``extract.device``)."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise GraphhashError(f"{key}: 'cuda' requested but no CUDA device is available (use auto or cpu)")
    return torch.device("cuda" if requested in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def resolve_workers(requested: int | str, device: torch.device) -> int:
    """DataLoader processes: ``auto`` is none on the CPU, up to 8 with CUDA.

    On CPU the model's threads already occupy every core, and a decoding process preempting one of them
    stalls them all at their next synchronisation: on 2 cores, EfficientNet-Lite0 extraction ran at 140
    images/s decoding in the main process and 111 with 2 workers (bench/extract_throughput.py).
    """
    if requested != "auto":
        return int(requested)
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def precision(device: torch.device) -> str:
    """How networks run on ``device``: ``bf16`` autocast with CUDA, ``fp32`` on the CPU (the same bytes every run)."""
    return "bf16" if device.type == "cuda" else "fp32"


def autocast(device: torch.device) -> torch.autocast:
    """The autocast context of ``precision(device)``."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision(device) == "bf16")


def available_memory() -> int | None:
    """Bytes of memory this process can still take: the kernel's estimate of what can be allocated without
    swapping (``MemAvailable``), or less when a cgroup (a container, a CI job) caps the process; None where
    neither can be read (not Linux)."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for limit, usage in _CGROUP_FILES:
        try:
            with open(limit, encoding="ascii") as f:
                cap = f.read().strip()
            with open(usage, encoding="ascii") as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if cap.isdigit() and int(cap) < 1 << 60:  # "max" (v2) or a huge number (v1): no cap
            found.append(max(int(cap) - used, 0))
    return min(found) if found else None


_CGROUP_FILES = (  # (the cap, what is in use): cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def memory_shortfall(needed: int, what: str) -> str | None:
    """Why ``needed`` bytes (for ``what``) cannot be held, in words, or None when they fit in ``available_memory``.

    The one check of a size before it is allocated; callers name the key that set the size.
    """
    available = available_memory()
    if available is None or needed <= available:
        return None
    return f"{what} would need {byte_size(needed)} of memory, more than the {byte_size(available)} available here"


def require_memory(key: str, needed: int, what: str) -> None:
    """Stop with one line naming ``key`` when ``needed`` bytes do not fit (``memory_shortfall``)."""
    reason = memory_shortfall(needed, what)
    if reason:
        raise GraphhashError(f"{key}: {reason}")


def byte_size(n: float) -> str:
    """``n`` bytes for a reader: 512 B, 1.5 KiB, 21.9 GiB, 4.4 PiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} PiB"
