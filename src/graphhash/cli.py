"""The ``graphhash`` command: look at a features file, check params.yaml, apply a preset, show the plots offline,
hash features, search a trained run and serve it as a web page."""

from __future__ import annotations

import argparse
import io
import json
import socket
from pathlib import Path

from graphhash.errors import GraphhashError
from graphhash.pipeline.stage import run


def _info(args: argparse.Namespace) -> None:
    from graphhash.files.features import SPLITS, read_features

    fs = read_features(args.file)
    sizes = ", ".join(f"{modality} {view.shape[1]}" for modality, view in fs.views.items())
    print(f"{args.file}: {len(fs.ids)} items, float32 features of dimension {sizes}")
    for name in SPLITS:
        print(f"  {name}: {int(getattr(fs, name).sum())} items")
    for key, value in sorted(fs.attrs.items()):
        print(f"  {key}: {value}")


def _check_params(args: argparse.Namespace) -> None:
    from graphhash.params.all import check_file

    print(json.dumps(check_file(args.params), indent=1))


def _preset(args: argparse.Namespace) -> None:
    from graphhash.presets import apply_presets

    changed = apply_presets(args.names, args.params)
    print(f"{args.params}: {', '.join(args.names)} applied; {len(changed)} values differ from the defaults")
    for key, value in changed.items():
        print(f"  {key}: {json.dumps(value)}")


def _plots(args: argparse.Namespace) -> None:
    import subprocess
    import sys

    from graphhash.evaluation.plots import write_chart_library

    print(f"chart library: {write_chart_library()}")
    dvc = Path(sys.executable).parent / "dvc"
    done = subprocess.run([str(dvc) if dvc.is_file() else "dvc", "plots", "show", *args.dvc_args], check=False)
    if done.returncode:
        raise GraphhashError(f"dvc plots show failed (exit status {done.returncode})")


def _encode(args: argparse.Namespace) -> None:
    import numpy as np

    from graphhash.database.run import run_paths
    from graphhash.files.atomic import write_bytes
    from graphhash.files.codes import pack
    from graphhash.nrdh.encoder import ItemEncoder, load_hash_network

    inputs = [Path(name) for name in args.inputs]
    root = Path(args.root)
    if len(inputs) == 1 and inputs[0].suffix.lower() in (".h5", ".hdf5"):
        network, config = load_hash_network(args.model)  # the file's own training items form the graph
        found, _ = ItemEncoder(network, config, features=inputs[0]).encode_file(inputs[0])
        what = f"the rows of {inputs[0]}"
    else:
        from graphhash.data.images import decode
        from graphhash.database.additions import image_files
        from graphhash.params import PARAMS_FILE, load_params
        from graphhash.params.extract import ExtractParams

        files = image_files(args.inputs)
        (extract,) = load_params(ExtractParams, path=root / PARAMS_FILE)
        encoder = ItemEncoder.load(args.model, run_paths(root)["features"], weights=extract.weights,
                                   weights_path=extract.weights_path)  # fmt: skip
        found = encoder.encode_images([np.asarray(decode(f.read_bytes(), str(f), args.max_pixels)) for f in files])
        what = f"{len(files)} images (files as named, each folder's images sorted by path)"
    codes = pack(found)
    buffer = io.BytesIO()
    np.save(buffer, codes)
    write_bytes(args.out, buffer.getvalue())
    print(f"{args.out}: {codes.shape[0]} codes packed into {codes.shape[1]} bytes each, of {what}")


def _add(args: argparse.Namespace) -> None:
    from graphhash.database.run import Database

    if bool(args.inputs) == bool(args.vectors):
        raise GraphhashError("add: give image files or folders, or --vectors FILE.npy --modality M")
    if args.vectors and not args.modality:
        raise GraphhashError("--vectors: give the rows' --modality (e.g. text)")
    database = Database(args.root, max_pixels=args.max_pixels, on_bad_image=args.on_bad_image)
    if args.vectors:
        ids = Path(args.ids).read_text(encoding="utf-8").splitlines() if args.ids else None
        report = database.add_vectors(args.vectors, args.modality, ids=ids, allow_duplicates=args.allow_duplicates,
                                      wait=args.wait)  # fmt: skip
    else:
        report = database.add(args.inputs, allow_duplicates=args.allow_duplicates, wait=args.wait)
    for line in report.skipped:
        print(f"skipped: {line}")
    print(f"added {len(report.done)} items to the database ({database.paths['changes']}); `dvc repro` records them "
          "in the pipeline's outputs")  # fmt: skip


def _remove(args: argparse.Namespace) -> None:
    from graphhash.database.run import Database

    database = Database(args.root)
    report = database.remove(args.ids, wait=args.wait)
    print(f"removed {len(report.done)} items from the database ({database.paths['changes']}); `dvc repro` records "
          "it in the pipeline's outputs")  # fmt: skip


def _search(args: argparse.Namespace) -> None:
    from graphhash.database.additions import image_files
    from graphhash.retrieval.retriever import Retriever

    if not (args.queries or args.id or args.features):
        raise GraphhashError("search: give image files or folders, --id ITEM, or --features FILE")
    if args.k < 1:
        raise GraphhashError(f"--k: must be at least 1, got {args.k}")
    retriever = Retriever.from_run(args.root, method=args.method, bits=args.bits, query_modality=args.query_modality,
                                   database_modality=args.database_modality)  # fmt: skip
    results = []
    files = image_files(args.queries)
    if files:
        results += retriever.search_images([(str(p), p.read_bytes()) for p in files], args.k, args.max_pixels)
    if args.id:
        results += retriever.search_ids(args.id, args.k)
    if args.features:
        results += retriever.search_features(args.features, args.k)
    if args.figure:
        from graphhash.retrieval.figure import write_contact_sheet

        write_contact_sheet(args.figure, retriever, results, query_files={str(p): p for p in files})
    if args.json:
        print(json.dumps({"run": retriever.info, "results": [r.as_dict() for r in results]}, indent=1))
        return
    info = retriever.info
    way = f", {info['query_modality']} -> {info['database_modality']}"
    print(f"{info['method']}, {info['bits']} bits{way}, {info['index']} index of {info['count']} items")
    labelled = bool(retriever.classes)  # a run without labels has no class or relevance to show
    for result in results:
        known = f" (class {result.class_name})" if result.class_name is not None else ""
        print(f"\nquery: {result.query}{known}")
        print(f"{'rank':>5}  {'distance':>8}  " + (f"{'class':<12}  {'relevant':<8}  " if labelled else "") + "id")
        for hit in result.hits:
            relevant = "" if hit.relevant is None else ("yes" if hit.relevant else "no")
            shown = f"{hit.class_name:<12}  {relevant:<8}  " if labelled else ""
            print(f"{hit.rank:>5}  {hit.distance:>8}  {shown}{hit.id}")
    if args.figure:
        print(f"\n{args.figure}: contact sheet written")


def _serve(args: argparse.Namespace) -> None:
    import torch
    import uvicorn

    from graphhash.retrieval.retriever import Retriever
    from graphhash.retrieval.server import LOOPBACK_HOSTS, create_app

    if args.threads < 1:
        raise GraphhashError(f"--threads: must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)  # requests run one at a time; see --threads
    retriever = Retriever.from_run(args.root, method=args.method, bits=args.bits, query_modality=args.query_modality,
                                   database_modality=args.database_modality)  # fmt: skip
    hosts = [*LOOPBACK_HOSTS, args.host, *args.allowed_hosts]
    app = create_app(retriever, allowed_hosts=hosts, max_pixels=args.max_pixels, allow_writes=args.allow_writes)
    listening = _listen(args.host, args.port)  # bound before the address is printed
    print(f"graphhash serve: http://{args.host}:{args.port}/ (Ctrl-C stops)")
    if args.allow_writes:
        print("graphhash serve: --allow-writes: POST /api/items adds an image, DELETE /api/items/<id> removes an item")
    if args.allowed_hosts:
        print(f"graphhash serve: requests may name the hosts {', '.join(dict.fromkeys(hosts))}")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``; one line when the address cannot be had (in use, not this machine's)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, proto)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise GraphhashError(f"--host {host} --port {port}: cannot listen there: {reason}") from None
    return listening


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", dest="root", default=".", help="the repository whose pipeline ran (default: here)")
    parser.add_argument("--method", help="e.g. nrdh-gcn (default: NRDH with params.yaml's first filter)")
    parser.add_argument("--bits", type=int, help="code length (default: the longest one indexed)")
    parser.add_argument("--query-modality", help="paired runs: the queries' modality, e.g. text (default: the run's "
                        "first, image)")  # fmt: skip
    parser.add_argument("--database-modality", help="paired runs: the modality searched among, e.g. image (default: "
                        "the queries')")  # fmt: skip


def _port(text: str) -> int:
    """A TCP port number, or an argument error."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number between 1 and 65535, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    from graphhash.data.images import MAX_PIXELS

    parser = argparse.ArgumentParser(prog="graphhash", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, work, summary: str, details: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=details or summary)
        sub.set_defaults(run=work)
        return sub

    command("info", _info, "describe a features file (HDF5)").add_argument("file")
    command("check-params", _check_params, "validate params.yaml and print the values stages will use").add_argument(
        "--params", default="params.yaml"
    )
    preset = command(
        "preset",
        _preset,
        "rewrite params.yaml as the defaults with named presets applied (the data sections are kept)",
        "Named presets live in presets/<name>.yaml. The sections that describe the data (prepare, extract) keep "
        "their values in params.yaml; every other key is reset to its default, then the presets are applied in "
        "order. `graphhash preset default` applies none.",
    )
    preset.add_argument("names", nargs="+", help="presets to apply in order, e.g. paper, filters; or default")
    preset.add_argument("--params", default="params.yaml")
    plots = command(
        "plots",
        _plots,
        "dvc plots show, offline: writes the chart library the repository's page loads, then runs it",
        "DVC's default page loads its chart libraries from a CDN; the repository's page (.dvc/plots/page.html) loads "
        ".dvc/plots/vega.js, which this writes once (from vl-convert-python). Run it at the repository's root; "
        "arguments after it go to dvc plots show. Afterwards plain `dvc plots show` works offline too.",
    )
    plots.add_argument("dvc_args", nargs=argparse.REMAINDER, help="arguments for dvc plots show")
    encode = command(
        "encode",
        _encode,
        "hash images, or every row of a features file, with a saved NRDH hash network",
        "Images are hashed as the run hashed its own items: with hash.network mlp through the run's backbone "
        "(params.yaml's extract section, checked against the features file), with cnn end to end; with "
        "hash.input: graph each joins its nearest training items of the run's features file. A features file "
        "(mlp only) is hashed row by row, its own training items forming the graph (each leaving itself out): the "
        "run's own features file gives the run's codes.",
    )
    encode.add_argument("model", help="the model's folder, e.g. models/nrdh-gcn/64/image")
    encode.add_argument("inputs", nargs="+", help="image files or folders of images; or one features file (.h5)")
    encode.add_argument("out", help="where to write the packed codes (.npy, uint8, bit 0 = MSB of byte 0)")
    encode.add_argument("--run", dest="root", default=".", help="the repository whose run made the model (its "
                        "params.yaml and features file; default: here)")  # fmt: skip
    search = command(
        "search",
        _search,
        "the nearest database items of images, item ids or features, from a run's index",
        "Queries are hashed the way the run hashed its own (backbone, hash network, kNN graph inputs) and searched "
        "in the run's index (index@<filter>-<bits>): ascending Hamming distance, ties by database index; with a "
        "flat index, exactly the evaluator's ranking.",
    )
    search.add_argument("queries", nargs="*", help="image files, or folders of images")
    search.add_argument("--id", action="append", default=[], help="an item id of the run (repeatable)")
    search.add_argument("--features", help="a features file (HDF5): every row is a query")
    search.add_argument("--k", type=int, default=10, help="results per query (default 10)")
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.add_argument("--figure", help="write a contact sheet (PNG): each query, then its results")
    _run_options(search)
    add = command(
        "add",
        _add,
        "add images to a run's database, without retraining: embedded, hashed and indexed as the run's own items",
        "Each image file (and every image under a folder named, sorted) joins the database of every index of the run, "
        "after the items already there; its id is its path as named. The change is recorded in the changes file "
        "(dvc.yaml's vars.paths.changes, tracked by git), which the pipeline reads: `dvc repro` after a retraining "
        "hashes the additions again with the new networks. An image whose content is already in the database is "
        "skipped; an id already there with other content is an error. Items of features rather than images (one "
        "modality of a paired run): --vectors rows.npy --modality text [--ids ids.txt].",
    )
    add.add_argument("inputs", nargs="*", help="image files or folders of images")
    add.add_argument("--vectors", help="a .npy matrix (n, D): each row an item of features in --modality")
    add.add_argument("--modality", help="with --vectors: the run's modality the rows are features of (e.g. text)")
    add.add_argument("--ids", help="with --vectors: a text file of one id per row (default: <file name>/<row>)")
    add.add_argument("--allow-duplicates", action="store_true", help="add images whose content is already there")
    add.add_argument("--on-bad-image", choices=("fail", "skip"), help="an unreadable image among many: fail (nothing "
                     "is added) or skip it (default: params.yaml's extract.on_bad_image)")  # fmt: skip
    remove = command(
        "remove",
        _remove,
        "take items out of a run's database by id (additions, or the pipeline's own items), without retraining",
    )
    remove.add_argument("ids", nargs="+", help="item ids, as search shows them")
    for change in (add, remove):
        change.add_argument("--run", dest="root", default=".", help="the repository whose pipeline ran (default: "
                            "here)")  # fmt: skip
        change.add_argument("--wait", action="store_true", help="wait for a change in progress (another add or "
                            "remove) instead of refusing")  # fmt: skip
    serve = command("serve", _serve, "a web page to search a run's index and browse its database")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port, 1-65535 (default 8000)")
    serve.add_argument("--allowed-hosts", nargs="+", default=[], metavar="NAME",
                       help="Host names requests may carry besides the --host and loopback names (a server bound "
                       "beyond this machine is reached by them); '*' accepts any")  # fmt: skip
    serve.add_argument("--allow-writes", action="store_true", help="accept POST /api/items (add an uploaded image) "
                       "and DELETE /api/items/<id> (remove an item); off by default")  # fmt: skip
    threads = "torch threads embedding an upload (default 1: steady latency when other work shares the cores)"
    serve.add_argument("--threads", type=int, default=1, help=threads)
    _run_options(serve)
    for images in (encode, search, serve, add):
        images.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="refuse query images of more pixels, "
                            f"read from their header before decoding (default {MAX_PIXELS:,})")  # fmt: skip
    args = parser.parse_args(argv)
    run(lambda: args.run(args), f"graphhash {args.command}")


if __name__ == "__main__":
    main()
