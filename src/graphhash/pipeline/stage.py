"""How a stage runs: its arguments from dvc.yaml's ``cmd``, logging, and errors as one line each."""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from graphhash.errors import GraphhashError
from graphhash.runtime import tune_allocator

log = logging.getLogger(__name__)


def run_stage(
    main: Callable[[argparse.Namespace], None], description: str, *, saves: str = "", **arguments: type
) -> None:
    """Parse ``--<argument> value`` for each of ``arguments`` (all required), then run ``main(args)``.

    A GraphhashError becomes its message, one ``error:`` line per line, and exit status 2; Ctrl-C exit 130, saying
    what a rerun resumes from (``saves``: the work the stage keeps as it goes) or that it starts over.
    The closing log line names the stage and its non-path arguments (``represent gcn``), its time and its peak
    memory, which the benchmarks read (``bench/common.py``).
    """
    parser = argparse.ArgumentParser(prog=Path(sys.argv[0]).name, description=description)
    for name, kind in arguments.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, required=True)
    args = parser.parse_args()
    label = " ".join([Path(sys.argv[0]).stem, *(str(v) for v in vars(args).values() if not isinstance(v, Path))])
    run(lambda: main(args), label, saves)


def peak_mib() -> float:
    """The largest resident memory of this process or of any process it waited for (ranks), in MiB."""
    usage = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return max(usage) / 1024  # Linux gives KiB


def setup_logging() -> None:
    """graphhash's info lines on stderr, as ``<logger>: <message>``; the libraries' only from warnings up."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("graphhash").setLevel(logging.INFO)


def run(work: Callable[[], None], label: str, saves: str = "") -> None:
    """Run ``work`` with logging set up, the allocator tuned and errors turned into one line each."""
    setup_logging()
    tune_allocator()
    start = time.perf_counter()
    try:
        work()
    except GraphhashError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        rerun = f"rerun it to resume from {saves}" if saves else "rerun it to start over (it saves no partial work)"
        print(f"interrupted: {label} left nothing half-written; {rerun}", file=sys.stderr)
        sys.exit(130)
    log.info("%s finished in %.1f s, peak %.0f MiB", label, time.perf_counter() - start, peak_mib())  # read by bench/
