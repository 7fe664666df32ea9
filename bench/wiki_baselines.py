"""The classical cross-modal hashing baselines (CVH, CMFH, CCA-ITQ; ``graphhash.crossmodal.baselines``) on the
Wikipedia image-text dataset (Rasiwasia et al., ACM MM 2010), with per-view LSH codes as the floor.

Data: ``../shared/datasets/wiki/`` (its README): 128-d SIFT bag-of-words image features and 10-d LDA topic
proportions of the texts, both rows summing to 1, 2,173 training and 693 test pairs in 10 categories.
Protocol: queries = the 693 test pairs, database = training set = the 2,173 training pairs; image -> text (an
image query's codes rank the database's text codes) and text -> image; relevance = same category; mAP@all and
mAP@50 (``graphhash.evaluation.metrics.evaluate``). Every method at its default hyperparameters, fitted on the
training pairs only; seeds 0, 1, 2, mean ± standard deviation (CVH draws nothing at random).

LSH: ``graphhash.evaluation.baselines.LSH`` fitted on each view alone (Gaussian hyperplanes through the view's
mean), so the two modalities' bits are unrelated: the chance level of cross-view ranking. CVH and CCA-ITQ find
at most min_m D_m correlated directions, here 9 (the topic proportions sum to 1, so the centred text features
span 9 dimensions): they refuse 10 bits or more, shown as "-". 8 bits is the one length every method takes.
A few seconds on one core.

    python bench/wiki_baselines.py [--bits 8 16 32 64] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from common import REPO

from graphhash.crossmodal.baselines import CCAITQ, CMFH, CVH
from graphhash.data.paired import read_wiki
from graphhash.errors import GraphhashError
from graphhash.evaluation.baselines import LSH
from graphhash.evaluation.metrics import evaluate

WIKI = REPO.parent / "shared" / "datasets" / "wiki"
METHODS = {"LSH (per view)": None, "CVH": CVH, "CCA-ITQ": CCAITQ, "CMFH": CMFH}
DIRECTIONS = (("image", "text"), ("text", "image"))


def load() -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Training views and labels, test views and labels (``graphhash.data.paired.read_wiki``)."""
    if not (WIKI / "raw_features.mat").is_file():
        print(f"skipped: {WIKI} not found (the Wikipedia features live in ../shared/datasets/wiki)")
        sys.exit(0)
    wiki = read_wiki(WIKI)
    train, test = ~wiki.query, wiki.query
    return ({m: x[train] for m, x in wiki.views.items()}, wiki.labels[train],
            {m: x[test] for m, x in wiki.views.items()}, wiki.labels[test])  # fmt: skip


class PerViewLSH:
    """LSH fitted on each view separately, with the same seed: the floor."""

    def __init__(self, bits: int, seed: int):
        self.bits, self.seed = bits, seed

    def fit(self, views: dict[str, np.ndarray]) -> PerViewLSH:
        self.hashers = {modality: LSH(self.bits, self.seed).fit(x) for modality, x in views.items()}
        return self

    def encode(self, x: np.ndarray, modality: str) -> np.ndarray:
        return self.hashers[modality].encode(x)


def measure(bits_list: list[int], seeds: list[int]) -> tuple[dict, dict[str, str], dict[str, float]]:
    """{(method, bits, direction, metric): [value per seed]}, the reason for each refused (method, bits), and
    each method's total fitting time."""
    train, train_labels, test, test_labels = load()
    found: dict = {}
    refused: dict[str, str] = {}
    seconds = dict.fromkeys(METHODS, 0.0)
    for method, cls in METHODS.items():
        for bits in bits_list:
            for seed in seeds:
                start = time.perf_counter()
                try:
                    model = (cls or PerViewLSH)(bits, seed).fit(train)
                except GraphhashError as exc:
                    refused[f"{method}, {bits} bits"] = str(exc)
                    break
                seconds[method] += time.perf_counter() - start
                for query, database in DIRECTIONS:
                    q = np.packbits(model.encode(test[query], query), axis=1)
                    d = np.packbits(model.encode(train[database], database), axis=1)
                    result = evaluate(q, d, test_labels, train_labels, bits, map_at=(50,))
                    for metric in ("map@all", "map@50"):
                        found.setdefault((method, bits, f"{query}->{database}", metric), []).append(result[metric])
    return found, refused, seconds


def tables(found: dict, bits_list: list[int], seeds: list[int]) -> list[str]:
    lines = [f"Seeds: {', '.join(map(str, seeds))}; mean ± standard deviation over the seeds; '-': refused.", ""]
    for metric in ("map@all", "map@50"):
        for query, database in DIRECTIONS:
            direction = f"{query}->{database}"
            lines += [
                f"#### {metric}, {direction}",
                "",
                "| method | " + " | ".join(f"{b} bits" for b in bits_list) + " |",
            ]
            lines.append("| --- |" + " --- |" * len(bits_list))
            for method in METHODS:
                cells = []
                for bits in bits_list:
                    values = found.get((method, bits, direction, metric))
                    cells.append(f"{np.mean(values):.4f} ± {np.std(values):.4f}" if values else "-")
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    found, refused, seconds = measure(args.bits, args.seeds)
    lines = tables(found, args.bits, args.seeds)
    lines += ["Refused:", *(f"- {key}: {reason}" for key, reason in refused.items()), ""]
    lines.append("Fitting time, all lengths and seeds: " + ", ".join(f"{m} {s:.1f} s" for m, s in seconds.items()))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
