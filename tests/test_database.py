"""A growing database (``graphhash add``, ``graphhash remove``): against a brute force over the codes the run's own
networks give the items left, against a rebuild by ``dvc repro``, after a retraining, and through bad input, a
killed add and a failing disk."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SEARCH_RUN, dvc_env, new_project, reference_ranking, run_in
from PIL import Image

from graphhash.data.images import decode
from graphhash.data.sources import open_source
from graphhash.database.changes import Change, locked, net, read_changes, write_changes
from graphhash.errors import GraphhashError
from graphhash.files.codes import pack, read_codes
from graphhash.files.index import find_indexes, read_index
from graphhash.nrdh.encoder import ItemEncoder
from graphhash.retrieval.retriever import Retriever

GRAPHHASH = str(Path(sys.executable).parent / "graphhash")


@pytest.fixture(scope="module")
def grown(search_run, tmp_path_factory) -> Path:
    """A copy of the search run (git, DVC and all) with the 20 query digits written as PNG files under ``new/``: images
    that are not in its database."""
    work = tmp_path_factory.mktemp("grown") / "repo"
    shutil.copytree(search_run, work, symlinks=True)
    codes = read_codes(work / "data" / "codes" / "nrdh-gcn" / "nrdh-gcn-24-image.h5")
    source = open_source("digits", "")
    (work / "new").mkdir()
    for item_id in codes.query_ids:
        source.image(item_id).save(work / "new" / f"{item_id.replace('/', '-')}.png")
    return work


def fails(cwd: Path, *args: str, env: dict | None = None, preexec=None) -> str:
    """Run graphhash, expect exit status 2 and one error line; return it."""
    done = subprocess.run([GRAPHHASH, *args], cwd=cwd, capture_output=True, text=True, env=env or dvc_env(cwd),
                          preexec_fn=preexec)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def brute_force(run: Path, bits: int) -> tuple[list[str], np.ndarray]:
    """The database as the changes file says it is, hashed independently of the index: the code file's database items
    less those removed, then the live additions in the order added, each image decoded from its file and hashed by the
    run's network (``ItemEncoder``); ids and packed codes."""
    state = net(read_changes(run / "data" / "changes.jsonl"))
    codes = read_codes(run / "data" / "codes" / "nrdh-gcn" / f"nrdh-gcn-{bits}-image.h5")
    kept = [i for i, item_id in enumerate(codes.database_ids) if item_id not in state.removed]
    ids = [codes.database_ids[i] for i in kept]
    database = [codes.database[kept]]
    additions = list(state.additions.values())
    if additions:
        encoder = ItemEncoder.load(run / "models" / "nrdh-gcn" / str(bits) / "image", run / "data" / "features.h5")
        images = [np.asarray(decode((run / a.change.path).read_bytes(), a.change.path)) for a in additions]
        database.append(pack(encoder.encode_images(images)))
        ids += [a.change.id for a in additions]
    return ids, np.concatenate(database)


def ranking(retriever: Retriever, queries: np.ndarray, k: int) -> list[list[str]]:
    slots, _ = retriever.search_codes(queries, k)
    return [[retriever.stored.ids[s] for s in row] for row in slots]


def probe_codes(run: Path, bits: int) -> np.ndarray:
    """Queries for the comparisons: the run's query items' codes (the added images are those items)."""
    codes = read_codes(run / "data" / "codes" / "nrdh-gcn" / f"nrdh-gcn-{bits}-image.h5")
    return codes.query


def assert_equals_brute_force(run: Path, bits: int = 24) -> list[list[str]]:
    retriever = Retriever.from_run(run, bits=bits)
    ids, database = brute_force(run, bits)
    assert retriever.stored.count == len(ids)
    queries = probe_codes(run, bits)
    expected, _ = reference_ranking(queries, database, len(ids))
    found = ranking(retriever, queries, len(ids))
    assert found == [[ids[r] for r in row] for row in expected]  # every rank, ties by database order
    return found


def test_added_images_are_found_removed_ones_never_and_a_rebuild_gives_the_same_results(grown):
    out = run_in(grown, "graphhash", "add", "new/")
    assert "added 20 items" in out
    status = json.loads(run_in(grown, "dvc", "status", "--json").splitlines()[-1])
    assert {"additions", "index@gcn-16", "index@gcn-24"} <= set(status)  # dvc status tells the truth
    retriever = Retriever.from_run(grown, bits=24)
    [result] = retriever.search_images([("q.png", (grown / "new" / "digits-0300.png").read_bytes())], 200)
    mine = [hit for hit in result.hits if hit.id == "new/digits-0300.png"]
    assert mine and mine[0].distance == 0 and mine[0].class_name == "" and mine[0].relevant is None
    assert_equals_brute_force(grown, 24)
    assert_equals_brute_force(grown, 16)

    pipeline = [i for i in retriever.stored.ids if not i.startswith("new/")][5:8]
    out = run_in(grown, "graphhash", "remove", "new/digits-0300.png", "new/digits-0387.png", *pipeline)
    assert "removed 5 items" in out
    found = assert_equals_brute_force(grown, 24)
    assert not {"new/digits-0300.png", *pipeline} & {i for row in found for i in row}
    run_in(grown, "graphhash", "add", "new/digits-0300.png")  # back, at the end of the database
    assert Retriever.from_run(grown, bits=24).stored.ids[-1] == "new/digits-0300.png"
    incremental = assert_equals_brute_force(grown, 24)

    run_in(grown, "dvc", "repro")  # the rebuild: the same items, the same order, the same results
    assert ranking(Retriever.from_run(grown, bits=24), probe_codes(grown, 24), 200) == incremental
    assert set(json.loads(run_in(grown, "dvc", "status", "--json").splitlines()[-1])) <= {"prepare"}


def test_a_retraining_rehashes_the_additions_and_codes_of_two_networks_never_mix(grown):
    run_in(grown, "git", "add", "-A")
    run_in(grown, "git", "commit", "-qm", "additions")
    before = read_index(grown / "data" / "index" / "nrdh-gcn-24" / "image")
    run_in(grown, "dvc", "exp", "run", "-S", "hash.steps=30")
    after = read_index(grown / "data" / "index" / "nrdh-gcn-24" / "image")
    added = after.serials >= 0
    assert [i for i, a in zip(after.ids, added, strict=True) if a] == [
        i for i, a in zip(before.ids, before.serials >= 0, strict=True) if a
    ]  # none lost, none back
    assert not np.array_equal(before.codes[before.serials >= 0], after.codes[added])  # the new network's codes
    assert_equals_brute_force(grown, 24)
    assert set(json.loads(run_in(grown, "dvc", "status", "--json").splitlines()[-1])) <= {"prepare"}

    params = (grown / "params.yaml").read_text(encoding="utf-8")
    (grown / "params.yaml").write_text(params.replace("steps: 30  #", "steps: 31  #"), encoding="utf-8")
    try:
        run_in(grown, "dvc", "repro", "-s", "hash@gcn")  # the network retrained, the index not rebuilt
        expected = "its codes were made by another hash network than models/nrdh-gcn/24/image's (trained since); "
        assert expected + "rerun: dvc repro index@gcn-24" in fails(grown, "search", "--id", "digits/0001", "--bits",
                                                                    "24")  # fmt: skip
        assert "rerun: dvc repro index@gcn-" in fails(grown, "add", "new/digits-0387.png")
    finally:
        (grown / "params.yaml").write_text(params, encoding="utf-8")
        run_in(grown, "dvc", "repro")


def test_duplicates_taken_ids_and_unknown_ids_change_nothing(grown):
    changes = grown / "data" / "changes.jsonl"
    before = changes.read_bytes()
    out = run_in(grown, "graphhash", "add", "new/digits-0387.png")  # removed earlier: added again
    assert "added 1 items" in out
    after_add = changes.read_bytes()
    out = run_in(grown, "graphhash", "add", "new/")
    assert "added 0 items" in out and out.count("skipped: ") == 20 and "(same content)" in out
    assert changes.read_bytes() == after_add != before
    other = grown / "other"
    other.mkdir()
    Image.new("RGB", (8, 8), "white").save(other / "x.png")
    Image.new("RGB", (8, 8), "black").save(other / "digits-0300.png")
    moved = grown / "new" / "digits-0300.png"
    saved = moved.read_bytes()
    try:
        shutil.copy(other / "digits-0300.png", moved)  # the same id, other content
        assert fails(grown, "add", "new/digits-0300.png") == (
            "error: id 'new/digits-0300.png': already in the database with other content; remove it first (graphhash "
            "remove), or add the file under another name"
        )
    finally:
        moved.write_bytes(saved)
    assert fails(grown, "remove", "new/digits-0387.png", "nope") == (
        "error: id 'nope': not in the database; nothing was removed"
    )
    assert changes.read_bytes() == after_add
    out = run_in(grown, "graphhash", "add", "--allow-duplicates", "other/x.png")
    assert "added 1 items" in out


def test_bad_files_fail_naming_them_or_are_skipped_as_extract_on_bad_image_says(grown):
    bad = grown / "bad"
    bad.mkdir()
    Image.new("RGB", (40, 40), "gray").save(bad / "a-good.png")
    (bad / "b-text.png").write_text("not an image\n", encoding="utf-8")
    Image.new("RGB", (400, 400), "blue").save(bad / "c-large.png")
    changes = grown / "data" / "changes.jsonl"
    before = changes.read_bytes()
    assert fails(grown, "add", "bad/", "--max-pixels", "10000") == (
        f"error: {Path('bad/b-text.png')}: cannot decode image: not an image format Pillow reads (set "
        "extract.on_bad_image: skip to leave such files out); nothing was added"
    )
    assert changes.read_bytes() == before
    out = run_in(grown, "graphhash", "add", "bad/", "--max-pixels", "10000", "--on-bad-image", "skip")
    assert "added 1 items" in out
    assert "skipped: bad/b-text.png: cannot decode image" in out
    assert "skipped: bad/c-large.png: 400 x 400 pixels (0.2 MP) is over the limit of 0.01 MP" in out
    assert net(read_changes(changes)).additions["bad/a-good.png"]
    assert fails(grown, "add", "bad/missing.png") == f"error: {Path('bad/missing.png')}: no such file or folder"


def test_an_add_to_a_run_never_built_is_one_line(tmp_path):
    work = new_project(tmp_path / "repo", SEARCH_RUN)
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    assert fails(work, "add", str(tmp_path / "x.png")) == (
        f"error: {Path('data/index')}: no index yet; run the pipeline first (dvc repro)"
    )


def counts(run: Path) -> set[int]:
    return {read_index(folder).count for folder in find_indexes(run / "data" / "index").values()}


def test_a_killed_add_leaves_each_index_before_or_after_and_a_rerun_completes_it(grown):
    """kill -9 at points spread over an add's run: every index file reads as the database before the add or after it,
    search works, and the same add run again completes it; then a write failing mid-way (every index after the first
    refused, as a full disk would) leaves the change recorded and the next change completes it."""
    more = grown / "more"
    more.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(more / f"{i:02d}.png")
    (before,) = counts(grown)
    start = time.perf_counter()
    run_in(grown, "graphhash", "add", "more/")
    took = time.perf_counter() - start
    ids = [f"more/{i:02d}.png" for i in range(30)]
    run_in(grown, "graphhash", "remove", *ids)
    for fraction in (0.6, 0.9, 1.0):
        process = subprocess.Popen([GRAPHHASH, "add", "more/"], cwd=grown, env=dvc_env(grown),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(took * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert counts(grown) <= {before, before + 30}
        retriever = Retriever.from_run(grown, bits=24)
        retriever.search_ids(retriever.stored.ids[:1], 5)
        run_in(grown, "graphhash", "add", "more/")  # completes it (or skips what is there)
        assert counts(grown) == {before + 30}
        assert_equals_brute_force(grown, 24)
        run_in(grown, "graphhash", "remove", *ids)
        assert counts(grown) == {before}


def test_a_full_disk_leaves_the_database_as_it_was(grown):
    """Writes fail past 20 KB (a file size limit: the kernel refuses the write, as on a full disk): the add's batch
    file cannot be written, so nothing changes, and the same add succeeds once the limit is gone."""
    big = grown / "big"
    big.mkdir()
    rng = np.random.default_rng(1)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(big / f"{i:02d}.png")
    changes = grown / "data" / "changes.jsonl"
    before, indexes = changes.read_bytes(), counts(grown)

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    line = fails(grown, "add", "big/", preexec=limited)
    assert line.startswith("error: ") and "cannot write" in line and line.endswith("nothing was changed")
    assert changes.read_bytes() == before and counts(grown) == indexes
    assert not list((grown / "data" / "additions").glob(".*.tmp"))
    assert "added 40 items" in run_in(grown, "graphhash", "add", "big/")


def test_the_changes_file_nets_its_lines_refuses_a_bad_one_and_its_lock_refuses_a_second_change(tmp_path):
    path = tmp_path / "changes.jsonl"
    add = lambda item, batch: Change("add", item, batch, "image", item, "0" * 64)  # noqa: E731
    write_changes(path, [add("a", 1), add("b", 1), Change("remove", "x"), Change("remove", "a"), add("a", 2)])
    state = net(read_changes(path))
    assert list(state.additions) == ["b", "a"] and state.additions["a"].serial == 5
    assert state.removed == {"x"} and state.batches == 2
    path.write_text(path.read_text(encoding="utf-8") + '{"op": "move", "id": "a"}\n', encoding="utf-8")
    with pytest.raises(GraphhashError, match=r"changes.jsonl:7: not a change"):
        read_changes(path)
    with locked(path, wait=False):
        with (
            pytest.raises(GraphhashError, match="another add or remove is changing the database"),
            locked(path, wait=False),
        ):
            pass
        code = "from graphhash.database.changes import locked; import sys\nwith locked(sys.argv[1], wait=False): pass"
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
        assert "another add or remove is changing the database" in done.stderr
    with locked(path, wait=False):  # released
        pass
    assert os.path.exists(tmp_path / ".changes.jsonl.lock")


def png(color: str, size: int = 24) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_server_adds_and_removes_with_allow_writes_and_sees_a_change_made_from_the_command_line(grown):
    from fastapi.testclient import TestClient

    from graphhash.retrieval.server import create_app

    retriever = Retriever.from_run(grown, bits=24)
    reader = TestClient(create_app(Retriever.from_run(grown, bits=24)), base_url="http://127.0.0.1")
    refused = reader.post("/api/items", content=png("red"), headers={"Content-Type": "image/png"})
    assert refused.status_code == 403 and "--allow-writes" in refused.json()["detail"]
    assert reader.delete("/api/items/new/digits-0300.png").status_code == 403

    client = TestClient(create_app(retriever, allow_writes=True, max_pixels=10_000), base_url="http://127.0.0.1")
    count = client.get("/api/info").json()["count"]
    added = client.post("/api/items", content=png("red"), headers={"Content-Type": "image/png", "X-Filename": "r.png"})
    assert added.status_code == 201 and added.json()["count"] == count + 1
    [item_id] = added.json()["added"]
    assert item_id.startswith("data/uploads/") and item_id.endswith("-r.png")
    again = client.post("/api/items", content=png("red"), headers={"Content-Type": "image/png"})
    assert again.status_code == 200 and again.json()["added"] == [] and "same content" in again.json()["skipped"][0]
    assert [f.name for f in (grown / "data" / "uploads").iterdir()] == [Path(item_id).name]  # no copy of the twin
    hits = client.post("/api/search", json={"id": item_id, "k": 200}).json()["hits"]
    assert item_id in [hit["id"] for hit in hits if hit["distance"] == 0]
    assert client.get(f"/api/image/{item_id}?size=48").status_code == 200
    last = client.get(f"/api/items?offset={count}&limit=1").json()["items"]
    assert [item["id"] for item in last] == [item_id]
    # the pixel limit and undecodable bytes, as for a search; nothing is written
    changes = (grown / "data" / "changes.jsonl").read_bytes()
    big = client.post("/api/items", content=png("blue", 200), headers={"Content-Type": "image/png"})
    assert big.status_code == 413 and "over the limit" in big.json()["detail"]
    text = client.post("/api/items", content=b"hello", headers={"Content-Type": "image/png"})
    assert text.status_code == 400 and "cannot decode image" in text.json()["detail"]
    assert (grown / "data" / "changes.jsonl").read_bytes() == changes

    removed = client.delete(f"/api/items/{item_id}")
    assert removed.status_code == 200 and removed.json()["count"] == count
    gone = client.delete(f"/api/items/{item_id}")
    assert gone.status_code == 404 and "not in the database" in gone.json()["detail"]
    # a change made by another process: the next request sees it
    Image.new("RGB", (20, 20), "green").save(grown / "green.png")
    run_in(grown, "graphhash", "add", "green.png")
    assert client.get("/api/info").json()["count"] == count + 1
    assert reader.get("/api/info").json()["count"] == count + 1
    run_in(grown, "graphhash", "remove", "green.png")
    assert client.get("/api/info").json()["count"] == count


def test_a_cnn_hash_network_hashes_the_additions_from_their_images(grown):
    """With ``hash.network: cnn`` the additions are hashed end to end from their image files (read again by the index
    stage after the retraining, and by an add): every ranking is the brute force's over the CNN's codes."""
    run_in(grown, "git", "add", "-A")
    run_in(grown, "git", "commit", "-qm", "before the cnn")
    run_in(grown, "dvc", "exp", "run", "-S", "hash.network=cnn", "-S", "hash.cnn.steps=5", "-S",
           "hash.cnn.image_size=32", "-S", "hash.cnn.trainable=1")  # fmt: skip
    assert_equals_brute_force(grown, 24)
    Image.new("RGB", (30, 30), "purple").save(grown / "purple.png")
    assert "added 1 items" in run_in(grown, "graphhash", "add", "purple.png")
    assert_equals_brute_force(grown, 24)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_ivf_and_hnsw_indexes_take_adds_and_removes(grown, kind):
    """The run's index rebuilt as ivf (every cell visited at this size: exhaustive) or hnsw, then an add and a remove:
    ivf gives the brute force's ranking; hnsw never returns a removed item and finds the added ones."""
    run_in(grown, "git", "add", "-A")
    run_in(grown, "git", "commit", "-qm", f"before {kind}")
    run_in(grown, "dvc", "exp", "run", "-S", f"index.kind={kind}")
    extra = grown / f"extra-{kind}"
    extra.mkdir()
    rng = np.random.default_rng(len(kind))  # other images for each kind: not duplicates of the other's
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(extra / f"{i}.png")
    run_in(grown, "graphhash", "add", str(extra.relative_to(grown)))
    retriever = Retriever.from_run(grown, bits=24)
    pipeline = [i for i in retriever.stored.ids if i.startswith("digits/")][:4]
    run_in(grown, "graphhash", "remove", *pipeline)
    retriever = Retriever.from_run(grown, bits=24)
    assert retriever.stored.kind == kind
    if kind == "ivf":
        assert retriever.stored.index.nprobe >= retriever.stored.index.nlist  # exhaustive: the exact ranking
        assert_equals_brute_force(grown, 24)
    else:
        assert retriever.stored.removed.sum() == 4 and retriever.stored.count == len(retriever.stored.ids) - 4
        found = ranking(retriever, probe_codes(grown, 24), 50)
        assert not set(pipeline) & {i for row in found for i in row}
        for i in range(3):
            [result] = retriever.search_images([("x.png", (extra / f"{i}.png").read_bytes())], 50)
            assert f"extra-{kind}/{i}.png" in [hit.id for hit in result.hits if hit.distance == 0]
