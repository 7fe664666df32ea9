"""``graphhash serve`` as a real process on 127.0.0.1 against hostile or careless clients (issue 30, 5-9): pixel
bombs refused from their header, foreign Host names refused, aborted uploads without tracebacks, bad ports as
argument errors, the URL printed once bound, multipart uploads. Every request is bounded by a timeout."""

from __future__ import annotations

import io
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from conftest import serving
from PIL import Image

from graphhash.data.images import TooManyPixelsError, decode
from graphhash.retrieval.retriever import Retriever

GRAPHHASH = str(Path(sys.executable).parent / "graphhash")


@pytest.fixture(scope="module")
def served(search_run, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``graphhash serve`` on a free port of 127.0.0.1 (its output in a file), stopped after the module."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out, serving(search_run, "--max-pixels", "1000000", output=out) as url:
        yield url, log


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` 16-bit grey pixels and holds a few bytes of them: its header is all
    a size check needs, and decoding it would fail as truncated."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64)))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_decode_refuses_more_pixels_than_the_limit_before_decoding():
    data = png(Image.new("RGB", (100, 50)))
    assert decode(data, "ok.png", max_pixels=5000).size == (100, 50)
    with pytest.raises(TooManyPixelsError, match=r"^big\.png: 100 x 50 pixels \(0\.0 MP\) is over the limit"):
        decode(data, "big.png", max_pixels=4999)
    with pytest.raises(TooManyPixelsError, match=r"13,300 x 13,300 pixels \(176\.9 MP\)"):
        decode(png_header_only(13_300, 13_300), "bomb.png", max_pixels=40_000_000)


def test_a_pixel_bomb_is_413_from_its_header(served):
    url, _ = served
    started = time.perf_counter()
    answer = httpx2.post(f"{url}/api/search", content=png_header_only(13_300, 13_300), timeout=30,
                         headers={"Content-Type": "image/png", "X-Filename": "bomb.png"})  # fmt: skip
    assert answer.status_code == 413, answer.text
    assert answer.json()["detail"].startswith("bomb.png: 13,300 x 13,300 pixels (176.9 MP) is over the limit of 1 MP")
    assert time.perf_counter() - started < 10
    assert httpx2.get(f"{url}/api/info", timeout=10).status_code == 200


def test_requests_naming_a_foreign_host_are_refused(served):
    """DNS rebinding: a page of evil.example.com whose name resolves to 127.0.0.1 sends Host: evil.example.com."""
    url, _ = served
    port = url.rsplit(":", 1)[1]
    for host in ("evil.example.com", f"evil.example.com:{port}", "127.0.0.1.evil.example.com"):
        answer = httpx2.get(f"{url}/api/items", headers={"Host": host}, timeout=10)
        assert answer.status_code == 400 and "digits/" not in answer.text, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert httpx2.get(f"{url}/api/items", headers={"Host": host}, timeout=10).status_code == 200


def test_an_aborted_upload_logs_no_traceback_and_the_server_keeps_serving(served):
    url, log = served
    port = int(url.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                           b"Content-Length: 1000000\r\n\r\n" + bytes(5000))  # fmt: skip
    time.sleep(1.0)
    assert httpx2.get(f"{url}/api/info", timeout=10).status_code == 200
    output = log.read_text()
    assert "Traceback" not in output and "Exception in ASGI application" not in output, output


def test_multipart_uploads_give_the_raw_bodys_answer(served, search_run):
    url, _ = served
    item = Retriever.from_run(search_run).stored.ids[4]
    data = png(Retriever.from_run(search_run).image(item))
    raw = httpx2.post(f"{url}/api/search?k=5", content=data, headers={"Content-Type": "image/png"}, timeout=60)
    form = httpx2.post(f"{url}/api/search?k=5", files={"file": ("q.png", data, "image/png")}, timeout=60)
    assert raw.status_code == form.status_code == 200, form.text
    assert [h["id"] for h in form.json()["hits"]] == [h["id"] for h in raw.json()["hits"]]
    assert form.json()["query"] == "q.png"
    text = httpx2.post(f"{url}/api/search", files={"file": ("notes.txt", b"just text", "text/plain")}, timeout=60)
    assert text.status_code == 400
    assert "notes.txt: cannot decode image" in text.json()["detail"]
    assert "as the body, or as a file field of multipart/form-data" in text.json()["detail"]
    fields = httpx2.post(f"{url}/api/search", data={"k": "3"}, files={}, timeout=60)
    assert fields.status_code == 400


@pytest.mark.parametrize("port", ["99999", "-1", "0", "http"])
def test_a_bad_port_is_an_argument_error(port, search_run):
    done = subprocess.run([GRAPHHASH, "serve", "--port", port], cwd=search_run, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"graphhash serve: error: argument --port: must be a port number between 1 and 65535, got '{port}'"
    )


def test_a_port_in_use_is_one_line_and_no_url(search_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([GRAPHHASH, "serve", "--port", str(port)], cwd=search_run, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "http://" not in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --host 127.0.0.1 --port {port}: cannot listen there: Address already in use"]
