"""Compare two models on the same rows: paired bootstrap of their ROC-AUC difference.

    python -m train.evaluate --model models/student-kd ... --scores runs/scores/student-kd.csv
    python -m train.evaluate --model models/student-scratch ... --scores runs/scores/student-scratch.csv
    python -m train.compare runs/scores/student-kd.csv runs/scores/student-scratch.csv
    python -m train.compare new/wild_scores.csv:teacher-sbi old/wild_scores.csv:teacher \
        --group-regex '^(.*)_(left_real|right_swapped)'

Whether distillation helped is a question about a difference, and two overlapping per-model CIs do not
answer it; resampling source videos (the ``group`` column) keeps correlated crops together.

The second form compares two models on the out-of-domain videos: ``train.cross_domain``'s per-file CSVs
(``wild_scores.csv``), one column each (``FILE:MODEL``; the model may be left out when the file has one). Only files
both models scored are compared. ``--group-regex`` resamples together the files whose names share its first group,
such as the two halves of one DeepFaceLive demo clip in ``wild_dev``, which share a processing history.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np

from deepfake_space.report import STATUS_OK
from train.cross_domain import read_scores as read_file_scores
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


def _file_scores(spec: str) -> tuple[str, dict[str, tuple[str, float]]]:
    """``FILE[:MODEL]`` of a ``train.cross_domain`` scores CSV -> (a name for the column, ``file -> (label,
    P(fake))`` of the files the model scored)."""
    if not _is_file_scores(spec):
        raise ValueError(f"{spec} is not a train.cross_domain scores CSV (it has no file column)")
    path, model = _split_spec(spec)
    rows, names = read_file_scores(path)
    if not model:
        if len(names) != 1:
            raise ValueError(f"{path} holds scores of {names}: name one as {path}:MODEL")
        model = names[0]
    if model not in names:
        raise ValueError(f"{path} has no scores for model {model!r}; it has {names}")
    scored = {r.file: (r.label, r.p_fake[model]) for r in rows if r.status == STATUS_OK}
    return f"{path.parent.name}/{model}", scored


def _split_spec(spec: str) -> tuple[Path, str]:
    """``FILE[:MODEL]`` -> (FILE, MODEL or "")."""
    if Path(spec).is_file() or ":" not in spec:
        return Path(spec), ""
    path, _, model = spec.rpartition(":")
    return Path(path), model


def _is_file_scores(spec: str) -> bool:
    """Whether ``spec`` names a ``train.cross_domain`` scores CSV (a ``file`` column) rather than an evaluate one."""
    with _split_spec(spec)[0].open(newline="") as f:
        return "file" in (csv.DictReader(f).fieldnames or [])


def file_groups(files: list[str], group_regex: str | None) -> list[str]:
    """The resampling group of each file: the first group of ``group_regex`` in its name where it matches (the two
    halves of one clip together), else the file alone."""
    pattern = re.compile(group_regex) if group_regex else None
    matches = [pattern.search(Path(file).name) if pattern else None for file in files]
    return [match.group(1) if match else file for match, file in zip(matches, files)]


def compare_files(spec_a: str, spec_b: str, group_regex: str | None = None, n_boot: int = 1000) -> dict:
    """Paired bootstrap over the files both models scored, resampling the groups ``group_regex`` makes (files whose
    names match share its first group; any other file is its own group). ``left_out`` counts the files only one
    of the two scored."""
    (name_a, a), (name_b, b) = _file_scores(spec_a), _file_scores(spec_b)
    files = sorted(set(a) & set(b))
    if not files:
        raise ValueError(f"{spec_a} and {spec_b} have no scored file in common")
    differ = [f for f in files if a[f][0] != b[f][0]]
    if differ:
        raise ValueError(f"the two files label {differ[0]} differently")
    y = np.array([a[f][0] == "fake" for f in files], dtype=int)
    result = paired_auc_difference(y, [a[f][1] for f in files], [b[f][1] for f in files],
                                   file_groups(files, group_regex), n_boot=n_boot)
    return result | {"a": name_a, "b": name_b, "files": len(files),
                     "left_out": len(set(a) ^ set(b))}


def _compare_files_cli(args: argparse.Namespace) -> None:
    result = compare_files(args.scores_a, args.scores_b, args.group_regex, args.n_boot)
    logger.info("%s vs %s on %d files: AUC %.4f vs %.4f, difference %+.4f (95 %% CI %+.4f to %+.4f; %d resamples of "
                "%d groups)", result["a"], result["b"], result["files"], result["auc_a"], result["auc_b"],
                result["difference"], result["ci_low"], result["ci_high"], result["n_boot"], result["units"])
    print(json.dumps(result, indent=2))


def _compare_rows_cli(args: argparse.Namespace) -> None:
    scores_a, scores_b = Path(args.scores_a), Path(args.scores_b)
    result = compare(scores_a, scores_b, args.by_group, args.n_boot)
    logger.info("%s vs %s: AUC %.4f vs %.4f, difference %+.4f (95 %% CI %+.4f to %+.4f; %d resamples of %d %s; "
                "A not better in %.1f %% of them)", scores_a.stem, scores_b.stem, result["auc_a"],
                result["auc_b"], result["difference"], result["ci_low"], result["ci_high"], result["n_boot"],
                result["units"], "groups" if args.by_group else "rows", 100 * result["p_not_better"])
    print(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scores_a", help="scores CSV of model A (train.evaluate --scores), or FILE[:MODEL] of a "
                                    "train.cross_domain scores CSV")
    p.add_argument("scores_b", help="the same of model B")
    p.add_argument("--by-row", dest="by_group", action="store_false",
                   help="resample single rows instead of whole groups (source videos)")
    p.add_argument("--group-regex", help="cross_domain files: resample together the files whose names share this "
                                         "regex's first group")
    p.add_argument("--n-boot", dest="n_boot", type=int, default=1000)
    args = p.parse_args(argv)
    try:
        if _is_file_scores(args.scores_a):
            _compare_files_cli(args)
        else:
            _compare_rows_cli(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
