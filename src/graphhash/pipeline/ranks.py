"""Ranks: one stage's work split over processes with ``torch.distributed``, on one machine or several.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in the environment of every process it starts. ``Ranks.join`` reads them and joins the
process group (gloo on CPU, nccl with one GPU per rank); a process started without them is rank 0 of 1 and
makes no group. ``launch`` starts N ranks on this machine from Python with the elastic agent ``torchrun``
itself runs (``torchrun --standalone --nproc-per-node N``), so ``dvc repro`` can start them from a param, and
turns a failed rank into one line naming it.

Nothing here moves data: ranks share a file system and agree on work by index (``shard``); collective calls
only compare small values (``gather``) and wait for each other (``barrier``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from graphhash.errors import GraphhashError

log = logging.getLogger(__name__)

# How long a rank waits for the others at a barrier: a shard that resumes with nothing left to do waits
# for the slowest shard, then for the merge. A rank that dies is noticed by the agent, not by this timeout.
WAIT = timedelta(hours=12)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of one run (rank 0 of 1 when started alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @staticmethod
    def launched() -> bool:
        """True in a process started by torchrun or ``launch`` (even as the only rank)."""
        return "WORLD_SIZE" in os.environ and "RANK" in os.environ

    @classmethod
    def join(cls, device: torch.device) -> Ranks:
        """This process's ranks from the launcher's environment; joins the process group when there are several.

        On CPU every rank on a machine gets an equal share of its cores as torch threads (torchrun's own
        default is one thread each, which leaves cores idle when there are fewer ranks than cores).
        """
        if not cls.launched():
            return cls()
        env = os.environ
        ranks = cls(
            rank=int(env["RANK"]),
            world=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            local_world=int(env.get("LOCAL_WORLD_SIZE", 1)),
        )
        if device.type == "cuda":
            if ranks.local_rank >= torch.cuda.device_count():
                raise GraphhashError(f"{ranks}: local rank {ranks.local_rank} has no GPU of its own "
                                     f"({torch.cuda.device_count()} here): start at most one rank per GPU")  # fmt: skip
            torch.cuda.set_device(ranks.local_rank)
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks.local_world))
        if ranks.world > 1:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=WAIT)
        return ranks

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world}"

    def shard(self, items: Sequence) -> Sequence:
        """This rank's items: every ``world``-th from position ``rank`` (disjoint, each item exactly once)."""
        return items[self.rank :: self.world]

    def gather(self, value: Any) -> list[Any]:
        """``value`` from every rank, in rank order (a picklable, small value)."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def leave(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(processes: int, work: Callable[..., None], *args: Any, key: str) -> None:
    """Run ``work(*args)`` in ``processes`` ranks on this machine, as ``torchrun --standalone`` would.

    The ranks rendezvous on 127.0.0.1. A rank that fails (an error, a kill) stops the others; the failure
    becomes one ``GraphhashError`` line naming the rank, ``key`` (the param that asked for the ranks) and why.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    log.info("%s: starting %d ranks on this machine", key, processes)
    quiet = [logging.getLogger(name) for name in ("torch.distributed.elastic", "torch.multiprocessing")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # the agent's own report of a failure is a traceback; the line below replaces it
        logger.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, _rank_main)(work, *args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        signal = failure.signal_name()
        why = f"killed by {signal}" if signal != "<N/A>" else _message(failure.message)
        raise GraphhashError(f"{key}: rank {rank} of {processes} failed: {why}; rerun to resume every shard "
                             "from its finished chunks") from None  # fmt: skip
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def _rank_main(work: Callable[..., None], *args: Any) -> None:
    """One rank started by ``launch``: logging and allocator as in a stage, then the work.

    An error reaches ``launch`` as its message alone (no traceback)."""
    from graphhash.pipeline.stage import setup_logging
    from graphhash.runtime import tune_allocator

    setup_logging()
    tune_allocator()
    try:
        work(*args)
    except GraphhashError as exc:
        raise RankError(str(exc)) from None


class RankError(Exception):
    """A rank's GraphhashError on its way back to ``launch`` (its message is what gets reported)."""


def _message(message: Any) -> str:
    """The error text of a failed rank from what the elastic agent recorded (a string or a dict)."""
    text = message.get("message", message) if isinstance(message, dict) else message
    text = str(text).strip().splitlines()
    last = next((line for line in reversed(text) if line.strip()), "unknown error")
    return last.removeprefix(f"{RankError.__module__}.{RankError.__qualname__}: ").removeprefix("RankError: ")
