"""DVC stage ``evaluate``: every code file (and the cosine ranking of the raw features) on the same protocol.

Reads: params.yaml (evaluate.*, and represent.filters x hash.bits, which name the code files),
data/codes/, data/features.h5, data/manifest.json (and the images of the figures). Writes:
metrics/metrics.json, metrics/results.md, metrics/plots/{pr_rank,precision_radius,recall_radius}/<bits>.csv,
metrics/retrieval/<method>-<bits>.png.
"""

from pathlib import Path

from graphhash.baselines import BASELINES
from graphhash.cli import stage
from graphhash.evaluation import code_files, evaluate_codes
from graphhash.params import load_params


@stage
def main() -> None:
    params = load_params("params.yaml", "evaluate", "represent", "hash")
    methods = [*BASELINES, *(f"nrdh-{name}" for name in params.represent.filters)]
    files = code_files(Path("data/codes"), methods, params.hash.bits)
    evaluate_codes(files, Path("data/features.h5"), Path("data/manifest.json"), params.evaluate, Path("metrics"))


if __name__ == "__main__":
    main()
