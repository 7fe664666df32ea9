"""Process-level settings for fast CPU inference and training."""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Iterator
from contextlib import contextmanager

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
