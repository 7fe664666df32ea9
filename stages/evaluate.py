"""DVC stage ``evaluate``: every code file (and the cosine ranking of the raw features) on the same protocol.

Reads: params.yaml (evaluate.*), data/codes/, data/features.h5, data/manifest.json (and the images of the
figures). Writes: metrics/metrics.json, metrics/results.md,
metrics/plots/{pr_rank,precision_radius,recall_radius}/<bits>.csv, metrics/retrieval/<method>-<bits>.png.
"""

from pathlib import Path

from graphhash.cli import stage
from graphhash.evaluation import evaluate_codes
from graphhash.params import load_params


@stage
def main() -> None:
    params = load_params("params.yaml", "evaluate")
    evaluate_codes(
        Path("data/codes"), Path("data/features.h5"), Path("data/manifest.json"), params.evaluate, Path("metrics")
    )


if __name__ == "__main__":
    main()
