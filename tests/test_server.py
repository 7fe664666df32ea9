"""``graphhash serve``: the JSON API against the Python API, bad requests as 4xx, nothing written to disk."""

from __future__ import annotations

import io
import tempfile

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from graphhash.files.codes import read_codes
from graphhash.retrieval.retriever import Retriever
from graphhash.retrieval.server import create_app


@pytest.fixture(scope="module")
def retriever(search_run) -> Retriever:
    return Retriever.from_run(search_run)


@pytest.fixture(scope="module")
def client(retriever) -> TestClient:
    return TestClient(create_app(retriever, max_bytes=200_000), base_url="http://127.0.0.1")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def query_ids(search_run) -> list[str]:
    return read_codes(search_run / "data" / "codes" / "nrdh-gcn" / "nrdh-gcn-24-image.h5").query_ids


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>graphhash search</title>" in page.text
    info = client.get("/api/info").json()
    assert (info["method"], info["bits"], info["index"], info["count"]) == ("nrdh-gcn", 24, "flat", 180)
    assert info["max_bytes"] == 200_000


def test_search_by_id_and_by_image_match_the_python_api(client, retriever, search_run):
    item = query_ids(search_run)[3]
    answer = client.post("/api/search", json={"id": item, "k": 7}).json()
    expected = retriever.search_ids([item], 7)[0]
    assert [h["id"] for h in answer["hits"]] == [h.id for h in expected.hits]
    assert [h["relevant"] for h in answer["hits"]] == [h.relevant for h in expected.hits]
    assert answer["run"] == {"method": "nrdh-gcn", "bits": 24, "index": "flat", "count": 180}
    data = png(retriever.image(item))
    upload = client.post("/api/search?k=5", content=data, headers={"Content-Type": "image/png", "X-Filename": "q.png"})
    assert upload.status_code == 200
    by_image = retriever.search_images([("q.png", data)], 5)[0]
    assert [h["id"] for h in upload.json()["hits"]] == [h.id for h in by_image.hits]
    assert upload.json()["query"] == "q.png" and upload.json()["label"] is None


def test_database_pages_and_thumbnails(client, retriever):
    first = client.get("/api/items?offset=0&limit=50").json()
    second = client.get("/api/items?offset=50&limit=50").json()
    assert first["total"] == 180 and [i["id"] for i in first["items"] + second["items"]] == retriever.stored.ids[:100]
    last = client.get("/api/items?offset=170&limit=50").json()
    assert [i["row"] for i in last["items"]] == list(range(170, 180))
    thumb = client.get(f"/api/image/{retriever.stored.ids[0]}?size=48")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.size == (48, 48)


@pytest.mark.parametrize(
    ("request_args", "status", "message"),
    [
        ({"content": b"just text", "headers": {"Content-Type": "image/png"}}, 400, "cannot decode image"),
        ({"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "the upload is empty"),
        ({"content": b"\x89PNG" + bytes(300_000), "headers": {"Content-Type": "image/png"}}, 413, "over the limit"),
        ({"json": {"id": "digits/nope", "k": 5}}, 404, "not a query or database item"),
        ({"json": {"id": "digits/0001", "k": 0}}, 400, "k: must be an integer between 1 and 200"),
        ({"json": {"id": "digits/0001", "k": 201}}, 400, "k: must be an integer between 1 and 200"),
        ({"json": {"id": "digits/0001", "k": True}}, 400, "k: must be an integer"),
        ({"json": {"k": 3}}, 400, 'JSON {"id"'),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "not a JSON object"),
    ],
)
def test_bad_searches_are_4xx_with_one_line_and_the_server_keeps_serving(client, search_run, request_args, status,
                                                                         message):  # fmt: skip
    answer = client.post("/api/search", **request_args)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert message in detail and "\n" not in detail and "0x" not in detail
    assert client.post("/api/search", json={"id": query_ids(search_run)[0], "k": 3}).status_code == 200


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/api/search?k=x", 422, "k: Input should be a valid integer"),
        ("/api/items?offset=180", 400, "offset: must be between 0 and 179"),
        ("/api/items?limit=0", 400, "limit: must be between 1 and 500"),
        ("/api/image/digits/nope", 404, "not an item of this run"),
        ("/api/image/digits/0001?size=1000", 400, "size: one of"),
    ],
)
def test_bad_pages_and_images_are_4xx(client, url, status, message):
    answer = client.post(url, content=b"x") if url.startswith("/api/search") else client.get(url)
    assert answer.status_code == status and message in str(answer.json()["detail"])
    assert client.get("/api/info").status_code == 200


def test_nothing_is_written_to_disk_by_requests(client, retriever, search_run, tmp_path, monkeypatch):
    """Uploads (up to the limit) are read into memory: no temporary file appears, and the run is unchanged."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = sorted(p for p in search_run.rglob("*") if ".git" not in p.parts)
    big = png(retriever.image(retriever.stored.ids[0]).resize((200, 200)))
    assert len(big) > 1000
    for _ in range(3):
        assert client.post("/api/search?k=3", content=big, headers={"Content-Type": "image/png"}).status_code == 200
        assert client.get(f"/api/image/{retriever.stored.ids[5]}").status_code == 200
    assert list(tmp_path.iterdir()) == []
    assert sorted(p for p in search_run.rglob("*") if ".git" not in p.parts) == before
