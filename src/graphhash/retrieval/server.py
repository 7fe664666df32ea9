"""``graphhash serve``: a web page to search a run and browse its database, and the JSON API the page uses.

    GET  /                      the page (retrieval/page.html)
    GET  /api/info              the run: method, code length, index kind, items, classes; the request limits
    GET  /api/items?offset&limit   a page of database items (row, id, class), in database order
    GET  /api/image/{id}        an item's thumbnail (PNG), read from the run's data source
    POST /api/search?k=K        body: an image file (its bytes, any Content-Type but JSON; or a file field of
                                multipart/form-data, as HTML forms and ``curl -F file=@x.jpg`` send it), or
                                JSON {"id": ..., "k": ...}
    POST /api/items             with --allow-writes: body an image file, as for a search: added to the database
                                (``graphhash add``; kept in the run's uploads folder); 201, or 200 when its content
                                is there already
    DELETE /api/items/{id}      with --allow-writes: the item taken out of the database (``graphhash remove``)

The database is read again whenever its index file changed (an add or a remove from the command line, ``dvc
repro``): every request first compares the file's inode, time and size with those it read, so the server sees
changes without a restart, and a request sees the index before a change or after it, never between (a change
renames a whole new file onto it). Without ``allow_writes`` (the default) the two writing requests get 403.

Bad requests (a body that is not an image, an empty body, an image over ``max_bytes`` or ``max_pixels``, an
unknown id, k out of range, a page out of range) get a 4xx with ``{"detail": "<one line>"}`` and the server keeps
serving (a write refused by the database: 400, 404 for an unknown id, 409 while another change runs); a request
naming a Host outside ``allowed_hosts`` gets 400 (a page on another site that resolves its name
to this machine, DNS rebinding, cannot read the API). Nothing is written to disk: uploads are read into memory
(multipart bodies too: parsed from memory, not spooled), with their size checked while they arrive, and an image's
header is read before its pixels are decoded; thumbnails are encoded in memory. Searches run one at a time (a lock
around the model and the database; changes are serialised with the command line's by the changes file's lock). A
client that disconnects mid-upload ends its request without a word.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import threading
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect

from graphhash.data.images import MAX_PIXELS, BadItemError, TooManyPixelsError, decode
from graphhash.errors import GraphhashError
from graphhash.evaluation.figures import thumbnail
from graphhash.retrieval.retriever import Retriever

MAX_K = 200  # results per query
MAX_BYTES = 10 * 1024 * 1024  # an uploaded image
MAX_PAGE = 500  # database items per page
THUMB_SIZES = (48, 96, 160)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # the Host names of a server bound to this machine only
MULTIPART_OVERHEAD = 64 * 1024  # a multipart body's boundaries and part headers, beyond the file itself
UPLOAD_FORMS = "send the image file's bytes as the body, or as a file field of multipart/form-data"


def create_app(
    retriever: Retriever,
    *,
    max_bytes: int = MAX_BYTES,
    max_k: int = MAX_K,
    max_pixels: int = MAX_PIXELS,
    allowed_hosts: list[str] | tuple[str, ...] = LOOPBACK_HOSTS,
    allow_writes: bool = False,
) -> FastAPI:
    """The app serving ``retriever``'s run to requests that name one of ``allowed_hosts`` (``"*"``: any); with
    ``allow_writes`` it adds and removes items."""
    app = FastAPI(title="graphhash", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    page = files("graphhash.retrieval").joinpath("page.html").read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A query parameter of the wrong type, as one line naming it."""
        first = exc.errors()[0]
        return JSONResponse({"detail": f"{first['loc'][-1]}: {first['msg']}"}, status_code=422)

    def locked(work, *args):
        with lock:
            retriever.refresh()  # the index as it is now: a change from elsewhere, or dvc repro
            return work(*args)

    @app.middleware("http")
    async def current(request: Request, call_next):
        """Every API request sees the database as it is now; an index that cannot be read is 503, in one line."""
        if request.url.path.startswith("/api/"):
            try:
                await run_in_threadpool(locked, lambda: None)
            except GraphhashError as exc:
                return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=503)
        return await call_next(request)

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))  # added last: checked first

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {**retriever.info, "max_k": max_k, "max_bytes": max_bytes, "max_page": MAX_PAGE,
                "writes": allow_writes}  # fmt: skip

    @app.get("/api/items")
    def items(offset: int = 0, limit: int = 48) -> dict[str, Any]:
        if not 1 <= limit <= MAX_PAGE:
            raise HTTPException(400, f"limit: must be between 1 and {MAX_PAGE}, got {limit}")
        with lock:
            total = retriever.stored.count
            if not 0 <= offset < max(total, 1):
                raise HTTPException(400, f"offset: must be between 0 and {total - 1}, got {offset}")
            found = retriever.items(offset, limit)
        page = [{"row": row, "id": item_id, "label": label,
                 "class_name": retriever.class_name(label) if item_id not in retriever.added else ""}
                for row, item_id, label in found]  # fmt: skip
        return {"total": total, "offset": offset, "items": page}

    def writable() -> None:
        if not allow_writes:
            raise HTTPException(403, "the server was started without --allow-writes: it does not change the database")

    @app.post("/api/items")
    async def add(request: Request) -> JSONResponse:
        writable()
        name, data = await _upload(request, max_bytes)
        report = await run_in_threadpool(_run, locked, _add_upload, [(name, data)], 0, 400, max_pixels,
                                         hint=UPLOAD_FORMS)  # fmt: skip
        body = {"added": report.done, "skipped": report.skipped, "count": retriever.stored.count}
        return JSONResponse(body, status_code=201 if report.done else 200)

    def _add_upload(uploads: list[tuple[str, bytes]], _: int, pixels: int):
        [(name, data)] = uploads
        decode(data, name, pixels)  # a bad or oversized image is refused before anything is written
        return retriever.add_upload(name, data)

    @app.delete("/api/items/{item_id:path}")
    async def remove(item_id: str) -> dict[str, Any]:
        writable()
        drop = lambda ids, _: retriever.remove(ids, wait=True)  # noqa: E731
        report = await run_in_threadpool(_run, locked, drop, [item_id], 0, 404)
        return {"removed": report.done, "count": retriever.stored.count}

    @app.get("/api/image/{item_id:path}")
    def image(item_id: str, size: int = 96) -> Response:
        if size not in THUMB_SIZES:
            raise HTTPException(400, f"size: one of {', '.join(map(str, THUMB_SIZES))}, got {size}")
        try:
            img = locked(retriever.image, item_id)
        except KeyError:
            raise HTTPException(404, f"id {item_id!r}: not an item of this run") from None
        except GraphhashError as exc:
            raise HTTPException(404, str(exc).splitlines()[0]) from None
        buffer = io.BytesIO()
        thumbnail(img, size).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/search")
    async def search(request: Request, k: int | None = None) -> dict[str, Any]:
        if content_type(request) == "application/json":
            query = _json_body(await _body(request, 64 * 1024))
            k = query.get("k", k if k is not None else 10)
            _check_k(k, max_k)
            if not isinstance(query.get("id"), str) or not query["id"]:
                raise HTTPException(400, 'body: JSON {"id": "<item id>", "k": <int>} expected')
            results = await run_in_threadpool(_run, locked, retriever.search_ids, [query["id"]], k, 404)
        else:
            k = 10 if k is None else k
            _check_k(k, max_k)
            name, data = await _upload(request, max_bytes)
            results = await run_in_threadpool(_run, locked, retriever.search_images, [(name, data)], k, 400,
                                              max_pixels, hint=UPLOAD_FORMS)  # fmt: skip
        return {"run": {key: retriever.info[key] for key in ("method", "bits", "index", "count")},
                **results[0].as_dict()}  # fmt: skip

    return app


async def _upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """An uploaded image's name and bytes: the body itself, or the file field of a multipart/form-data body."""
    name = request.headers.get("x-filename", "upload")[:200]
    if content_type(request) == "multipart/form-data":
        form = await _body(request, max_bytes + MULTIPART_OVERHEAD)
        name, data = _multipart_file(form, request.headers["content-type"], max_bytes)
    else:
        data = await _body(request, max_bytes)
    if not data:
        raise HTTPException(400, f"image: the upload is empty; {UPLOAD_FORMS}")
    return name, data


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _multipart_file(body: bytes, declared: str, limit: int) -> tuple[str, bytes]:
    """The first file of a multipart/form-data ``body`` (its file name and bytes), parsed in memory."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + declared.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts = list(message.iter_parts()) if message.is_multipart() else []
    for part in parts:
        if part.get_filename() is not None or part.get_content_maintype() == "image":
            data = part.get_payload(decode=True) or b""
            if len(data) > limit:
                raise HTTPException(413, f"body: the file is over the limit of {limit:,} bytes")
            return (part.get_filename() or "upload")[:200], data
    raise HTTPException(400, f"body: a multipart/form-data request without a file field; {UPLOAD_FORMS}")


def _check_k(k: Any, max_k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise HTTPException(400, f"k: must be an integer between 1 and {max_k}, got {k!r}")


def _json_body(data: bytes) -> dict[str, Any]:
    try:
        query = json.loads(data)
    except ValueError:
        query = None
    if not isinstance(query, dict):
        raise HTTPException(400, 'body: not a JSON object; send {"id": "<item id>", "k": <int>}')
    return query


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (nothing is spooled to disk)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body: {int(declared):,} bytes is over the limit of {limit:,}")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, f"body: over the limit of {limit:,} bytes")
    except ClientDisconnect:  # nobody is left to answer: end the request quietly
        raise HTTPException(400, "body: the client disconnected during the upload") from None
    return bytes(body)


def _run(locked, search, queries: list, k: int, status: int, *options: Any, hint: str = "") -> Any:
    """``search(queries, k, *options)`` under the lock; a query the run cannot take is ``status`` with its one line
    (an image over the pixel limit 413, an item that cannot be read 400, followed by ``hint``: what to send instead;
    a change while another runs 409)."""
    try:
        return locked(search, queries, k, *options)
    except TooManyPixelsError as exc:
        raise HTTPException(
            413, str(exc).splitlines()[0].replace("--max-pixels", "the server's --max-pixels")
        ) from None
    except BadItemError as exc:
        line = str(exc).splitlines()[0]
        raise HTTPException(400, f"{line}; {hint}" if hint else line) from None
    except GraphhashError as exc:
        line = str(exc).splitlines()[0]
        raise HTTPException(409 if "another add or remove" in line else status, line) from None
