"""Compare two models on the same rows: paired bootstrap of their ROC-AUC difference.

    python -m train.evaluate --model models/student-kd ... --scores runs/scores/student-kd.csv
    python -m train.evaluate --model models/student-scratch ... --scores runs/scores/student-scratch.csv
    python -m train.compare runs/scores/student-kd.csv runs/scores/student-scratch.csv

Whether distillation helped is a question about a difference, and two overlapping per-model CIs do not
answer it; resampling source videos (the ``group`` column) keeps correlated crops together.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import numpy as np

from train.metrics import paired_auc_difference

logger = logging.getLogger("compare")


def read_scores(path: Path) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(index, group, label, p_fake) columns of a ``train.evaluate --scores`` CSV."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no scores")
    return (np.array([int(r["index"]) for r in rows]), [r["group"] for r in rows],
            np.array([int(r["label"]) for r in rows]), np.array([float(r["p_fake"]) for r in rows]))


def compare(scores_a: Path, scores_b: Path, by_group: bool = True, n_boot: int = 1000) -> dict[str, float]:
    index_a, groups, y, p_a = read_scores(scores_a)
    index_b, _, y_b, p_b = read_scores(scores_b)
    if not (np.array_equal(index_a, index_b) and np.array_equal(y, y_b)):
        raise ValueError(f"{scores_a} and {scores_b} score different rows: evaluate both on the same split "
                         "with the same --limit")
    return paired_auc_difference(y, p_a, p_b, groups if by_group else None, n_boot=n_boot)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scores_a", type=Path, help="scores CSV of model A")
    p.add_argument("scores_b", type=Path, help="scores CSV of model B")
    p.add_argument("--by-row", dest="by_group", action="store_false",
                   help="resample single rows instead of whole groups (source videos)")
    p.add_argument("--n-boot", dest="n_boot", type=int, default=1000)
    args = p.parse_args(argv)
    result = compare(args.scores_a, args.scores_b, args.by_group, args.n_boot)
    logger.info("%s vs %s: AUC %.4f vs %.4f, difference %+.4f (95 %% CI %+.4f to %+.4f; %d resamples of %d %s; "
                "A not better in %.1f %% of them)", args.scores_a.stem, args.scores_b.stem, result["auc_a"],
                result["auc_b"], result["difference"], result["ci_low"], result["ci_high"], result["n_boot"],
                result["units"], "groups" if args.by_group else "rows", 100 * result["p_not_better"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
