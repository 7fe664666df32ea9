"""The ``additions`` stage: the features of every item ``graphhash add`` added (``graphhash.database``).

It reads the changes file and keeps one batch file per ``graphhash add`` in its output folder (a persistent
output: DVC leaves it in place when the stage reruns). A batch whose file already holds its items, embedded by
the run's backbone, is kept as it is, so ``dvc repro`` after an add embeds nothing; a batch whose file is missing
(a clone without the cache) or stale (the backbone changed) is embedded again from its files, each checked against
the digest the changes file recorded.
"""

from __future__ import annotations

from pathlib import Path

from graphhash.database.additions import Embedder, sync_additions
from graphhash.params.extract import ExtractParams


def update_additions(changes: Path, features: Path, params: ExtractParams, out: Path) -> None:
    """Bring the additions folder ``out`` up to the changes file ``changes`` (embedding with the backbone that made
    ``features``, with the weights params.yaml's ``extract`` section asks for)."""
    sync_additions(changes, Embedder(features, params), out)
