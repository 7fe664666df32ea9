"""A growing database on a clean clone: the digits default run, 100 images added, some removed, a retraining, as
issue 32's "done when" asks; each step checked and its output kept, the transcript written into docs/benchmarks.md.

The script clones the repository's last commit into a scratch folder and runs there, with this Python's tools and
the clone's own code (``PYTHONPATH``): ``dvc repro``; 100 of the run's query digits written as PNG files (images the
database does not hold) and ``graphhash add``; a search with one of them; ``graphhash remove`` of 10 additions and 2
of the pipeline's items; the ranking of every query item checked against a brute force over the codes the run's
networks give the items left (the ids of the pipeline's database less those removed, then the additions in the
order added); ``git commit``, ``dvc exp run -S hash.steps=300``; the additions checked to be in every index, hashed
by the new networks; ``dvc status``.

    python bench/growing_clone.py      # about 5 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, write_report

from graphhash.data.images import decode
from graphhash.data.sources import open_source
from graphhash.database.changes import net, read_changes
from graphhash.files.codes import pack, read_codes
from graphhash.files.index import find_indexes, read_index
from graphhash.index import build_index
from graphhash.nrdh.encoder import ItemEncoder, find_hash_network

DOC = REPO / "docs" / "benchmarks.md"
ADDED, REMOVED_ADDITIONS, REMOVED_ITEMS = 100, 10, 2


class Clone:
    def __init__(self, root: Path):
        self.root = root
        tools = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(root / "src"),
                    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
                    "DVC_SITE_CACHE_DIR": str(root.parent / "dvc-site"), "COLUMNS": "120"}  # fmt: skip
        self.transcript: list[str] = []

    def run(self, command: str, show: int | None = 0) -> str:
        """Run ``command``; keep it and the last ``show`` lines of its output in the transcript (None: all)."""
        start = time.perf_counter()
        done = subprocess.run(["bash", "-c", command], cwd=self.root, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        output = done.stdout + done.stderr
        if done.returncode:
            raise SystemExit(f"{command!r} failed in {self.root}:\n{output[-3000:]}")
        lines = [line for line in output.splitlines() if not line.startswith("graphhash.pipeline.stage:")]
        self.transcript.append(f"$ {command}    # {seconds:.1f} s")
        self.transcript += lines if show is None else lines[-show:] if show else []
        return output

    def note(self, line: str) -> None:
        self.transcript.append(f"# {line}")


def brute_force_check(root: Path, bits: int) -> int:
    """Every query item's ranking in the index against a brute force over independently made codes; the items."""
    state = net(read_changes(root / "data" / "changes.jsonl"))
    codes = read_codes(root / "data" / "codes" / "nrdh-gcn" / f"nrdh-gcn-{bits}-image.h5")
    kept = [i for i, item_id in enumerate(codes.database_ids) if item_id not in state.removed]
    additions = list(state.additions.values())
    model = find_hash_network(root / "models", "nrdh-gcn", bits, "image")
    encoder = ItemEncoder.load(model, root / "data" / "features.h5")
    images = [np.asarray(decode((root / a.change.path).read_bytes(), a.change.path)) for a in additions]
    database = np.concatenate([codes.database[kept], pack(encoder.encode_images(images))])
    ids = [codes.database_ids[i] for i in kept] + [a.change.id for a in additions]
    stored = read_index(root / "data" / "index" / f"nrdh-gcn-{bits}" / "image")
    assert stored.ids == ids, "the index holds other items, or in another order"
    q = np.unpackbits(codes.query, axis=1).astype(np.int16)
    d = np.unpackbits(database, axis=1).astype(np.int16)
    distances = (q[:, None, :] != d[None]).sum(axis=2)
    found, _ = build_index(stored.kind, stored.options).search(stored.index, stored.codes, codes.query, len(ids))
    for row, found_row in zip(distances, found, strict=True):
        assert np.array_equal(np.lexsort((np.arange(len(ids)), row)), found_row), "a ranking differs"
    return len(ids)


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "graphhash"
        subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
        clone = Clone(root)
        clone.run("dvc repro", show=1)
        manifest = json.loads((root / "data" / "manifest.json").read_text(encoding="utf-8"))
        queries = [item for item, query in zip(manifest["ids"], manifest["query"], strict=True) if query][:ADDED]
        (root / "new-digits").mkdir()
        source = open_source("digits", "")
        for item in queries:
            source.image(item).save(root / "new-digits" / f"{item.replace('/', '-')}.png")
        clone.note(f"{ADDED} of the run's query digits written as PNG files: images the database does not hold")
        clone.run("graphhash add new-digits/", show=1)
        first = f"new-digits/{queries[0].replace('/', '-')}.png"
        clone.run(f"graphhash search {first} --k 5", show=None)
        pipeline = [i for i in read_index(root / "data" / "index" / "nrdh-gcn-64" / "image").ids
                    if i.startswith("digits/")][:REMOVED_ITEMS]  # fmt: skip
        gone = [f"new-digits/{item.replace('/', '-')}.png" for item in queries[1 : 1 + REMOVED_ADDITIONS]]
        clone.run(f"graphhash remove {' '.join(gone + pipeline)}", show=1)
        clone.run("dvc status", show=None)
        for bits in (16, 32, 64):
            items = brute_force_check(root, bits)
        clone.note(f"every query's ranking in each index (16, 32, 64 bits) equals a brute force over {items:,} items: "
                   "the pipeline's database less 2, then 90 additions in the order added")  # fmt: skip
        before = {key: read_index(folder) for key, folder in find_indexes(root / "data" / "index").items()}
        clone.run("git add -A && git commit -qm 'additions'")
        clone.run("dvc exp run -S hash.steps=300", show=0)
        changed = 0
        for key, folder in find_indexes(root / "data" / "index").items():
            after = read_index(folder)
            added = after.serials >= 0
            assert [i for i, a in zip(after.ids, added, strict=True) if a] == [
                i for i, a in zip(before[key].ids, before[key].serials >= 0, strict=True) if a]  # fmt: skip
            changed += int((after.codes[added] != before[key].codes[before[key].serials >= 0]).any(axis=1).sum())
        for bits in (16, 32, 64):
            brute_force_check(root, bits)
        clone.note(f"after the retraining: the 90 additions in every index, in order; {changed} of their 270 codes "
                   "changed (the new networks'); every ranking equals the brute force again")  # fmt: skip
        clone.run("dvc status", show=None)
    lines = ["```", f"$ python bench/growing_clone.py    # a clean clone of {commit}", *clone.transcript, "```"]
    write_report(DOC, lines, block="growing_clone")


if __name__ == "__main__":
    main()
