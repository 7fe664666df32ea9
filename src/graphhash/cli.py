"""The ``graphhash`` command: look at a features file, check params.yaml, apply a preset, hash features."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from graphhash.pipeline.stage import run


def _info(args: argparse.Namespace) -> None:
    from graphhash.files.features import SPLITS, read_features

    fs = read_features(args.file)
    print(f"{args.file}: {fs.features.shape[0]} x {fs.features.shape[1]} float32 features")
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


def _encode(args: argparse.Namespace) -> None:
    import numpy as np

    from graphhash.files.atomic import write_bytes
    from graphhash.files.codes import pack
    from graphhash.pipeline.hash import encode_features

    codes = pack(encode_features(Path(args.model), Path(args.features)))
    buffer = io.BytesIO()
    np.save(buffer, codes)
    write_bytes(args.out, buffer.getvalue())
    print(f"{args.out}: {codes.shape[0]} codes packed into {codes.shape[1]} bytes each")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="graphhash", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="describe a features file (HDF5)")
    info.add_argument("file")
    info.set_defaults(run=_info)
    check = commands.add_parser("check-params", help="validate params.yaml and print the values stages will use")
    check.add_argument("--params", default="params.yaml")
    check.set_defaults(run=_check_params)
    preset = commands.add_parser(
        "preset",
        help="rewrite params.yaml as the defaults with named presets applied (the data sections are kept)",
        description="Named presets live in presets/<name>.yaml. The sections that describe the data (prepare, "
        "extract) keep their values in params.yaml; every other key is reset to its default, then the presets "
        "are applied in order. `graphhash preset default` applies none.",
    )
    preset.add_argument("names", nargs="+", help="presets to apply in order, e.g. paper, filters; or default")
    preset.add_argument("--params", default="params.yaml")
    preset.set_defaults(run=_preset)
    enc = commands.add_parser("encode", help="hash every row of a features file with a saved NRDH hash network")
    enc.add_argument("model", help="the model's folder, e.g. models/nrdh-gcn-64")
    enc.add_argument(
        "features",
        help="a features file (HDF5) from the extract stage (for a model trained with "
        "hash.input: graph, its training items are the graph's nodes)",
    )
    enc.add_argument("out", help="where to write the packed codes (.npy, uint8, bit 0 = MSB of byte 0)")
    enc.set_defaults(run=_encode)
    args = parser.parse_args(argv)
    run(lambda: args.run(args), f"graphhash {args.command}")


if __name__ == "__main__":
    main()
