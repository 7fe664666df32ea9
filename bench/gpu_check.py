"""The GPU check: on a machine with CUDA, the CUDA tests and the GPU figures in one run of a few minutes.

Steps, each printed as soon as it is measured:

0. the GPU's name, torch's and CUDA's versions;
1. the CUDA tests (``pytest -k cuda``: the filters on CUDA against the CPU, the worker and rank checks),
   run in a subprocess with a timeout; pass / fail / skip counts;
2. extraction of ViT-B/16 (224 px) and EfficientNet-Lite0 (160 px) on CUDA (bf16 autocast, channels-last,
   batch 256): the bare model forward on ready, normalised, GPU-resident batches (``bench/extract_throughput``'s
   ``bare_forward``) and the whole extract stage on the same images, alternated (bare, stage, bare, stage,
   bare), as images/s and their ratio (target >= 0.9). Images: CIFAR-10 from ../shared/datasets/cifar10-jpeg.tar
   when it is there, else the bundled digits (it says which). ViT-B/16 uses IMAGENET1K_V1 when the file is in
   the torch hub cache, else random weights (``extract.weights: none``), and says so;
3. the represent and hash stages as the pipeline runs them: ``dvc repro hash@gcn`` in a fresh scratch DVC project
   (``common.Project``, ``bench/.work/gpu-check``) on the images of step 2 (EfficientNet-Lite0 at 160 px), each
   stage timed by its own closing log line; ``hash.network: mlp``, then ``hash.network: cnn`` with
   ``hash.cnn.device`` cuda and cpu (DVC reruns only the hash stage). ``represent`` and the MLP have no device
   setting, so they run on the CPU only, and their lines say so. The represent and MLP steps are capped by
   ``--steps``; seconds and the CPU / CUDA ratio;
4. with two GPUs or more: ViT-B/16 extraction with ``extract.ranks: 2`` (one GPU each, nccl) against one
   rank on the same images, images/s, speed-up, and the largest difference between the two files' features.

A time budget (``--budget-s``, default 420 s) is checked before every measurement: what would overrun it is
skipped, with a line saying so, so that the run ends well under 8 minutes. The defaults take about 3-5 minutes
on one H200. At the end a markdown block (the GPU named, the date, the figures) is written into
docs/benchmarks.md, between the ``gpu_check`` markers (``common.write_report``, replacing the previous check's
block), and printed.

    python bench/gpu_check.py [--images 4096] [--budget-s 420] [--steps 200] [--source auto|cifar10|digits]

Without CUDA it prints one line and exits with status 2. ``--allow-cpu`` runs every step on the CPU at small
sizes (batch 16, ViT-B/16 at 64 px with random weights, fewer steps): a smoke test of the script's code paths
only, whose figures say nothing about any GPU: its block is printed, not written into docs/benchmarks.md. Exit
status: 0, or 1 when a test or a step failed.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from common import BENCHMARKS, CIFAR_TAR, REPO, WORK, Project, params, write_report
from extract_throughput import bare_forward

from graphhash.backbones import load_backbone
from graphhash.data.sources import open_source
from graphhash.files.features import read_features
from graphhash.files.manifest import Manifest
from graphhash.params.extract import ExtractParams
from graphhash.params.hash import HashParams
from graphhash.params.prepare import PrepareParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.extract import extract
from graphhash.pipeline.prepare import prepare
from graphhash.pixels import to_pixels
from graphhash.runtime import precision, tune_allocator

HARD_LIMIT_S = 480  # 8 minutes: the run is stopped there whatever the budget says
PROJECT = "gpu-check"  # step 3's scratch DVC project, bench/.work/gpu-check, made afresh by every check


def say(line: str = "") -> None:
    print(line, flush=True)


@dataclass
class Budget:
    """Seconds left of ``--budget-s``; ``allows`` says (and prints) whether a measurement of ``need`` s fits."""

    seconds: float
    start: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def allows(self, what: str, need: float) -> bool:
        if self.left() >= need:
            return True
        say(f"  skipped {what}: about {need:.0f} s needed, {max(0.0, self.left()):.0f} s of the budget left")
        return False


@dataclass
class Setup:
    device: str  # "cuda", or "cpu" under --allow-cpu
    batch: int
    repeats: int
    steps: int
    cnn_steps: int
    cnn_size: int
    images: int
    source: str
    work: Path
    rows: dict[str, list[list[str]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def row(self, table: str, *cells: str) -> None:
        self.rows.setdefault(table, []).append(list(cells))


# Step 0 -------------------------------------------------------------------------------------------------------


def gpu_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU smoke test)"


def describe_machine() -> str:
    cuda = torch.version.cuda or "none"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none"
    gpus = torch.cuda.device_count()
    return (f"{gpu_name()} x {gpus}, torch {torch.__version__}, CUDA {cuda}, cuDNN {cudnn}, "
            f"{os.cpu_count()} CPU cores")  # fmt: skip


# Step 1 -------------------------------------------------------------------------------------------------------


def run_cuda_tests(setup: Setup, budget: Budget) -> None:
    """``pytest -k cuda`` over tests/; prints the counts and, on failure, the failing tests' lines."""
    say("step 1: the CUDA tests (pytest -k cuda)")
    timeout = min(180.0, budget.left() - 60)
    if not budget.allows("the CUDA tests", 60):
        return
    command = [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider", "tests"]
    start = time.perf_counter()
    try:
        run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"  the tests ran past {timeout:.0f} s and were stopped")
        setup.failures.append("CUDA tests: timed out")
        setup.row("tests", "pytest -k cuda", f"timed out after {timeout:.0f} s")
        return
    seconds = time.perf_counter() - start
    lines = run.stdout.strip().splitlines()
    summary = lines[-1] if lines else run.stderr.strip()[-300:]
    counts = dict(
        (kind, int(n)) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary)
    )
    shown = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("passed", "failed", "skipped"))
    errors = counts.get("error", 0) + counts.get("errors", 0)
    shown += f", {errors} errors" if errors else ""
    say(f"  {shown} in {seconds:.0f} s (pytest exit status {run.returncode})")
    for line in lines:
        if line.startswith(("FAILED", "ERROR")):
            say(f"  {line}")
    if run.returncode not in (0, 5):  # 5: no test collected
        setup.failures.append(f"CUDA tests: {summary}")
    setup.row("tests", "pytest -k cuda", shown)


# Step 2 -------------------------------------------------------------------------------------------------------


def prepare_section(setup: Setup) -> dict:
    """The ``prepare`` section of the images: CIFAR-10 (half train, half test, equal per class; what
    ``common.cifar_manifest`` makes) when the tar is there, else the bundled digits."""
    if setup.source in ("auto", "cifar10") and CIFAR_TAR.is_file():
        return {"source": "cifar10", "path": str(CIFAR_TAR), "query_size": 1, "limit_per_class": setup.images // 20}
    if setup.source == "cifar10":
        raise SystemExit(f"gpu_check: {CIFAR_TAR} not found")
    return {"source": "digits", "limit_per_class": max(2, setup.images // 10), "query_size": 1}


def manifest_for(setup: Setup) -> tuple[Manifest, str]:
    """The manifest of ``prepare_section``'s images, and what they are."""
    section = prepare_section(setup)
    manifest = prepare(PrepareParams(**section))
    if section["source"] == "cifar10":
        return manifest, f"{len(manifest)} CIFAR-10 images (JPEG, 32 px, from {CIFAR_TAR.name})"
    return manifest, f"{len(manifest)} digits images (8 px, bundled; the CIFAR-10 tar is not in ../shared/datasets)"


def vit_weights(setup: Setup) -> tuple[str, int, str]:
    """ViT-B/16's weights, image size and a note: IMAGENET1K_V1 when the hub cache holds it, else random."""
    from torchvision.models import ViT_B_16_Weights

    enum = ViT_B_16_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / enum.url.rsplit("/", 1)[-1]
    if cached.is_file():
        return "default", 224, "IMAGENET1K_V1"
    size = 224 if setup.device == "cuda" else 64  # random weights take any multiple of 16; small on CPU
    say(f"  vit_b_16: random weights (ImageNet weights not in the hub cache: {cached})")
    return "none", size, "random weights"


def extract_params(setup: Setup, backbone: str, weights: str, size: int, ranks: int = 1) -> ExtractParams:
    return ExtractParams(backbone=backbone, weights=weights, image_size=size, batch_size=setup.batch,
                         num_workers="auto", device=setup.device, ranks=ranks)  # fmt: skip


def time_stage(manifest: Manifest, params: ExtractParams, dest: Path) -> float:
    start = time.perf_counter()
    extract(manifest, params, dest)
    return time.perf_counter() - start


def extraction(setup: Setup, budget: Budget, manifest: Manifest) -> dict[str, tuple[ExtractParams, Path]]:
    """Bare forward vs the extract stage for both backbones; returns each backbone's params and features file."""
    say(f"step 2: extraction on {setup.device}, batch {setup.batch}, bare forward vs the extract stage")
    vit = vit_weights(setup)
    plan = [("vit_b_16", *vit), ("efficientnet_lite0", "default", 160, "ImageNet weights")]
    made = {}
    source = open_source(manifest.source, manifest.path)
    for name, weights, size, described in plan:
        # about 5 passes over the images, each under a few seconds on a GPU; more on the CPU
        if not budget.allows(f"{name} extraction", 45 if setup.device == "cuda" else 20):
            continue
        params = extract_params(setup, name, weights, size)
        start = time.perf_counter()
        device = torch.device(setup.device)
        backbone = load_backbone(name, weights, "", size).to(device)
        pixels = np.stack([to_pixels(source.image(i), size, backbone.interpolation) for i in manifest.ids])
        batches = [torch.from_numpy(pixels[s : s + setup.batch]) for s in range(0, len(pixels), setup.batch)]
        say(f"  {name} ({described}) at {size} px, {precision(device)}, {len(batches)} batches; model load "
            f"and decoding beforehand {time.perf_counter() - start:.1f} s")  # fmt: skip
        bares, stages = [bare_forward(backbone, device, batches)], []
        say(f"    bare forward {bares[-1]:>9.1f} images/s")
        dest = setup.work / f"{name}.h5"
        for _ in range(setup.repeats):
            if stages and not budget.allows(f"{name}'s further runs", 3 * len(manifest) / min(stages[-1], bares[-1])):
                break
            dest.unlink(missing_ok=True)
            stages.append(len(manifest) / time_stage(manifest, params, dest))
            say(f"    stage        {stages[-1]:>9.1f} images/s")
            bares.append(bare_forward(backbone, device, batches))
            say(f"    bare forward {bares[-1]:>9.1f} images/s")
        del backbone, batches, pixels
        if setup.device == "cuda":
            torch.cuda.empty_cache()
        bare, stage = float(np.mean(bares)), len(stages) / float(np.sum([1 / s for s in stages]))
        ratio = stage / bare
        verdict = "meets the 0.9 target" if ratio >= 0.9 else "below the 0.9 target"
        say(f"  {name}: bare {bare:.0f} images/s, stage {stage:.0f} images/s, ratio {ratio:.3f} ({verdict})")
        setup.row(
            "extract",
            f"{name} ({described}), {precision(device)}",
            f"{size}",
            f"{bare:,.0f}",
            f"{stage:,.0f}",
            f"{ratio:.2f}",
        )
        made[name] = params, dest
    return made


# Step 3 -------------------------------------------------------------------------------------------------------


def stage_devices(section: type, nested: str | None = None) -> list[str]:
    """The devices to time a stage on: CUDA and the CPU when its params have a device setting, else []."""
    fields = section.model_fields
    if nested:
        fields = fields[nested].annotation.model_fields
    if "device" not in fields:
        return []
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


def represent_and_hash(setup: Setup, budget: Budget, manifest: Manifest) -> None:
    """represent, hash (mlp) and hash (cnn, per device) through ``dvc repro hash@gcn`` in a fresh scratch project."""
    bits = 64 if manifest.split.train.sum() >= 64 else 16  # as the baselines need (as many training items as bits)
    represent_steps = min(RepresentParams().steps, setup.steps)
    mlp_steps = min(HashParams().steps, setup.steps)
    base = params(
        prepare=prepare_section(setup),
        extract={"backbone": "efficientnet_lite0", "weights": "default", "image_size": 160, "batch_size": setup.batch,
                 "device": setup.device},
        codes={"bits": [bits], "filters": ["gcn"]},
        represent={"steps": represent_steps},
    )  # fmt: skip
    say(f"step 3: dvc repro hash@gcn ({bits} bits; represent {represent_steps} steps, hash mlp {mlp_steps} steps, "
        f"hash cnn {setup.cnn_steps} steps at {setup.cnn_size} px) on {len(manifest)} images "
        f"({int(manifest.split.train.sum())} training items), in {WORK / PROJECT}")  # fmt: skip
    if not stage_devices(RepresentParams):
        say("  represent: no device setting (represent.device), so it runs on the CPU only")
    if not stage_devices(HashParams):
        say("  hash mlp: no device setting (hash.device), so it runs on the CPU only")
    cnn_devices = stage_devices(HashParams, "cnn") or ["cpu"]
    shutil.rmtree(WORK / PROJECT, ignore_errors=True)  # no run cache from an earlier check: every stage runs
    project = Project(PROJECT)
    runs = [("hash mlp", "cpu", {"network": "mlp", "steps": mlp_steps}, 60)]
    for device in cnn_devices:
        # hash cnn on the CPU of a GPU machine trains at the GPU's sizes (96 px, 50 steps): allow it minutes; the
        # smoke test's (32 px, 3 steps) took 5 s on 100 images, 2 cores, plus the stage's start
        need = 40 if device == "cuda" else 240 if setup.device == "cuda" else 90
        cnn = {"network": "cnn", "cnn": {"steps": setup.cnn_steps, "image_size": setup.cnn_size, "device": device}}
        runs.append(("hash cnn", device, cnn, need))
    times: dict[str, dict[str, float]] = {}
    for label, device, section, need in runs:
        if not budget.allows(f"{label} on {device}", need):
            continue
        name = f"{label.replace(' ', '-')}-{device}"
        try:
            record = project.run(name, params(**{**base, "hash": section}), targets=("hash@gcn",))
        except SystemExit as exc:  # dvc failed: the project says where its log is
            raise RuntimeError(str(exc.code)) from None
        for stage, found in record["stages"].items():
            kind = label if stage.startswith("hash") else stage.split()[0]
            where = device if kind == label else "cpu"  # represent has no device setting
            if kind not in ("represent", label) or where in times.get(kind, {}):
                continue
            times.setdefault(kind, {})[where] = found["seconds"]
            say(f"  {stage} ({kind} on {where}): {found['seconds']:.1f} s, peak {found['peak_mib']:.0f} MiB")

    for label, found in times.items():
        detail = {"represent": f"{represent_steps} steps", "hash mlp": f"{mlp_steps} steps",
                  "hash cnn": f"{setup.cnn_steps} steps, {setup.cnn_size} px"}[label]  # fmt: skip
        on_cuda, on_cpu = found.get("cuda"), found.get("cpu")
        ratio = f"{on_cpu / on_cuda:.1f}" if on_cuda and on_cpu else "-"
        if on_cuda and on_cpu:
            say(f"  {label}: CPU / CUDA = {ratio}")
        has_device = label == "hash cnn" and "device" in HashParams.model_fields["cnn"].annotation.model_fields
        cuda_cell = f"{on_cuda:.1f}" if on_cuda else "-" if has_device else "no device setting"
        cpu_cell = f"{on_cpu:.1f}" if on_cpu else "-"
        setup.row("stages", f"{label} ({detail})", cuda_cell, cpu_cell, ratio)


# Step 4 -------------------------------------------------------------------------------------------------------


def two_ranks(setup: Setup, budget: Budget, manifest: Manifest, vit: tuple[ExtractParams, Path] | None) -> None:
    """ViT-B/16 extraction with 2 ranks against 1 on the same images; speed-up and the features' difference."""
    gpus = torch.cuda.device_count()
    if setup.device == "cuda" and gpus < 2:
        say("step 4: one GPU: 2-rank torchrun extraction skipped")
        setup.row("ranks", "2 ranks vs 1", "one GPU: skipped", "", "", "")
        return
    say(f"step 4: extraction with extract.ranks 2 vs 1 ({'one GPU each, nccl' if setup.device == 'cuda' else 'gloo'})")
    if vit is None:
        say("  skipped: no ViT-B/16 run in step 2")
        return
    if not budget.allows("2-rank extraction", 60 if setup.device == "cuda" else 40):
        return
    params, _ = vit
    one, two = setup.work / "ranks-1.h5", setup.work / "ranks-2.h5"
    single = len(manifest) / time_stage(manifest, params, one)
    say(f"  1 rank:  {single:>9.1f} images/s")
    double = len(manifest) / time_stage(manifest, params.model_copy(update={"ranks": 2}), two)
    say(f"  2 ranks: {double:>9.1f} images/s (the launch of the ranks included), speed-up {double / single:.2f}")
    a, b = read_features(one), read_features(two)
    same_ids = a.ids == b.ids
    diff = float(np.max(np.abs(np.asarray(a.features) - np.asarray(b.features)))) if same_ids else float("nan")
    scale = float(np.max(np.abs(np.asarray(a.features))))
    close = same_ids and np.allclose(a.features, b.features, rtol=2e-2, atol=2e-2 * scale)
    say(f"  merged file vs single-rank file: same ids {same_ids}, max abs diff {diff:.3g} (features up to "
        f"{scale:.3g}), {'close' if close else 'NOT close'}")  # fmt: skip
    if not close:
        setup.failures.append(f"2-rank features differ from the single-rank file (max abs diff {diff:.3g})")
    setup.row("ranks", f"vit_b_16 ({params.weights}), {params.image_size} px", f"{single:,.0f}", f"{double:,.0f}",
              f"{double / single:.2f}", f"{diff:.3g}")  # fmt: skip


# The markdown block ---------------------------------------------------------------------------------------------


TABLES = {
    "tests": ("CUDA tests", ["tests", "result"]),
    "extract": ("Extraction (bf16 and channels-last on CUDA)",
                ["backbone", "px", "bare forward images/s", "stage images/s", "ratio (target >= 0.9)"]),
    "stages": ("represent and hash stages", ["stage", "CUDA s", "CPU s", "CPU / CUDA"]),
    "ranks": ("2-GPU extraction (extract.ranks)", ["run", "1 rank images/s", "2 ranks images/s", "speed-up",
                                                    "max abs diff"]),
}  # fmt: skip


def markdown(setup: Setup, machine: str, images: str) -> str:
    today = datetime.date.today().isoformat()
    lines = [f"### GPU check: {gpu_name()} ({today})", "",
             f"`python bench/gpu_check.py --images {setup.images}`: {machine}; {images}; batch {setup.batch}.",
             ""]  # fmt: skip
    if setup.device == "cpu":
        lines[2:2] = ["CPU smoke test (--allow-cpu): these figures say nothing about a GPU.", ""]
    for key, (title, header) in TABLES.items():
        if key not in setup.rows:
            continue
        lines += [f"{title}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in setup.rows[key]]
        lines.append("")
    return "\n".join(lines)


def stop(*_) -> None:
    raise TimeoutError(f"stopped at {HARD_LIMIT_S - 20} s, to end under 8 minutes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096, help="images extracted (CIFAR-10: half train, half test)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="seconds; steps that would overrun are skipped")
    parser.add_argument("--steps", type=int, default=200, help="cap on the represent and hash (mlp) Adam steps")
    parser.add_argument("--source", choices=("auto", "cifar10", "digits"), default="auto")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke test on the CPU at small sizes")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_check: no CUDA device here; run it on a machine with one")
        return 2
    budget = Budget(min(args.budget_s, HARD_LIMIT_S - 30))
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(HARD_LIMIT_S - 20)  # the step under way fails; the figures so far are still printed
    tune_allocator()
    logging.basicConfig(level=logging.WARNING)
    cuda = torch.cuda.is_available() and not args.allow_cpu
    machine = describe_machine()
    say(f"step 0: {machine}" + ("" if cuda else "; CPU smoke test (--allow-cpu): the figures are not GPU figures"))

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        setup = Setup(device="cuda" if cuda else "cpu", batch=256 if cuda else 16, repeats=2 if cuda else 1,
                      steps=args.steps if cuda else min(args.steps, 20), cnn_steps=50 if cuda else 3,
                      cnn_size=96 if cuda else 32, images=args.images, source=args.source, work=Path(tmp))  # fmt: skip
        images = "no images"
        steps = [("step 1", lambda: run_cuda_tests(setup, budget))]
        made: dict[str, tuple[ExtractParams, Path]] = {}
        manifest: Manifest | None = None

        def step2() -> None:
            nonlocal manifest, images
            manifest, images = manifest_for(setup)
            say(f"  images: {images}")
            made.update(extraction(setup, budget, manifest))

        def step3() -> None:
            if manifest is None:
                say("step 3: skipped (no images from step 2)")
                return
            represent_and_hash(setup, budget, manifest)

        def step4() -> None:
            if manifest is not None:
                two_ranks(setup, budget, manifest, made.get("vit_b_16"))

        steps += [("step 2", step2), ("step 3", step3), ("step 4", step4)]
        for label, run in steps:
            try:
                run()
            except Exception as exc:  # one step's failure does not hide the others' figures
                say(f"{label} failed: {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=3)
                setup.failures.append(f"{label}: {type(exc).__name__}: {exc}")
        signal.alarm(0)
        elapsed = time.perf_counter() - budget.start
        block = markdown(setup, machine, images).rstrip().splitlines()
        if cuda:
            say(f"\ndone in {elapsed:.0f} s; the gpu_check block of docs/benchmarks.md:\n")
            write_report(BENCHMARKS, block, "gpu_check")
        else:
            say(f"\ndone in {elapsed:.0f} s; a CPU smoke test, so not written into docs/benchmarks.md:\n")
            say("\n".join(block))
        for failure in setup.failures:
            say(f"FAILED: {failure}")
    return 1 if setup.failures else 0


if __name__ == "__main__":
    sys.exit(main())
