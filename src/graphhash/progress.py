"""Progress reporting: a tqdm bar on a terminal, plain log lines elsewhere (CI logs, DVC output)."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("graphhash.progress")


class Progress:
    """Count work done towards ``total``; use as a context manager and call ``update(n)``."""

    def __init__(self, total: int, unit: str, desc: str, initial: int = 0, every_s: float = 30.0):
        self.total, self.unit, self.desc, self.every_s = total, unit, desc, every_s
        self.done = self.start_done = initial
        self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc) if sys.stderr.isatty() else None
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
            log.info("%s: %d/%d %s (%.0f%%), %.1f %s/s", self.desc, self.done, self.total, self.unit,
                     100.0 * self.done / max(self.total, 1), rate, self.unit)  # fmt: skip
            self.last = now

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
