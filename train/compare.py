"""Compare two models on the same rows: paired bootstrap of their ROC-AUC difference.

    python -m train.evaluate --model models/student-kd ... --scores runs/scores/student-kd.csv
    python -m train.evaluate --model models/student-scratch ... --scores runs/scores/student-scratch.csv
    python -m train.compare runs/scores/student-kd.csv runs/scores/student-scratch.csv
    python -m train.compare new/wild_scores.csv:teacher-sbi old/wild_scores.csv:teacher \
        --group-regex '^(.*)_(left_real|right_swapped)'
    python -m train.compare teacher.csv+sibling.csv teacher.csv      # the pair the two would make, from scores

Whether distillation helped is a question about a difference, and two overlapping per-model CIs do not
answer it; resampling source videos (the ``group`` column) keeps correlated crops together.

The second form compares two models on the out-of-domain videos: ``train.cross_domain``'s per-file CSVs
(``wild_scores.csv``), one column each (``FILE:MODEL``; the model may be left out when the file has one). Only files
both models scored are compared. ``--group-regex`` resamples together the files whose names share its first group,
such as the two halves of one DeepFaceLive demo clip in ``wild_dev``, which share a processing history.

A side may join several score files with ``+``: the models' logits averaged with equal weights (``logit_mean``), the
score of the ``train.ensemble`` pair they would make (up to its in-network resize), to decide whether building and
measuring that pair is worth it.
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
from sklearn.metrics import roc_auc_score

from deepfake_space.report import STATUS_OK
from train.cross_domain import read_scores as read_file_scores
from train.metrics import logit_mean, paired_auc_difference

logger = logging.getLogger("compare")

WILD_DEV_GROUPS = r"^(.*)_(left_real|right_swapped)"  # --group-regex for wild_dev: a DeepFaceLive demo clip's halves


def read_scores(path: Path) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(index, group, label, p_fake) columns of a ``train.evaluate --scores`` CSV."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no scores")
    return (np.array([int(r["index"]) for r in rows]), [r["group"] for r in rows],
            np.array([int(r["label"]) for r in rows]), np.array([float(r["p_fake"]) for r in rows]))


def read_side(spec: str | Path) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """``read_scores`` of one file, or of ``A+B+...``: the logit average of files that score the same rows."""
    parts = _side_parts(str(spec))
    index, groups, y, p = read_scores(Path(parts[0]))
    ps = [p]
    for part in parts[1:]:
        index_b, _, y_b, p_b = read_scores(Path(part))
        _check_same_rows(parts[0], part, (index, y), (index_b, y_b))
        ps.append(p_b)
    return index, groups, y, logit_mean(ps) if len(ps) > 1 else p


def _side_parts(spec: str) -> list[str]:
    """The files of a side: ``spec`` itself where it names a file, else its ``+``-separated parts."""
    return [spec] if Path(spec).is_file() or "+" not in spec else spec.split("+")


def _check_same_rows(name_a: str | Path, name_b: str | Path, a: tuple[np.ndarray, np.ndarray],
                     b: tuple[np.ndarray, np.ndarray]) -> None:
    """``a`` and ``b`` are (index, label) arrays of two score files, which must score the same rows."""
    if not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])):
        raise ValueError(f"{name_a} and {name_b} score different rows: evaluate both on the same split "
                         "with the same --limit")


def compare(scores_a: Path | str, scores_b: Path | str, by_group: bool = True, n_boot: int = 1000) -> dict[str, float]:
    index_a, groups, y, p_a = read_side(scores_a)
    index_b, _, y_b, p_b = read_side(scores_b)
    _check_same_rows(scores_a, scores_b, (index_a, y), (index_b, y_b))
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


def read_file_side(spec: str) -> tuple[str, dict[str, tuple[str, float]]]:
    """``_file_scores`` of one ``FILE[:MODEL]``, or of ``A+B+...``: the logit average over the files all of them
    scored."""
    sides = [_file_scores(part) for part in _side_parts(spec)]
    if len(sides) == 1:
        return sides[0]
    files = sorted(set.intersection(*(set(scored) for _, scored in sides)))
    averaged = {}
    for file in files:
        labels = {scored[file][0] for _, scored in sides}
        if len(labels) > 1:
            raise ValueError(f"the files of {spec} label {file} differently")
        averaged[file] = (labels.pop(), float(logit_mean([scored[file][1] for _, scored in sides])))
    return "+".join(name for name, _ in sides), averaged


def _split_spec(spec: str) -> tuple[Path, str]:
    """``FILE[:MODEL]`` -> (FILE, MODEL or "")."""
    if Path(spec).is_file() or ":" not in spec:
        return Path(spec), ""
    path, _, model = spec.rpartition(":")
    return Path(path), model


def _is_file_side(spec: str) -> bool:
    """Whether a side (one spec or several joined by ``+``) holds ``train.cross_domain`` scores: its first file says."""
    return _is_file_scores(_side_parts(spec)[0])


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
    (name_a, a), (name_b, b) = read_file_side(spec_a), read_file_side(spec_b)
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


def compare_named(files: dict[str, str], pairs: list[tuple[str, str]], group_regex: str | None = None,
                  n_boot: int = 1000) -> list[dict]:
    """``compare`` (or ``compare_files``, for cross_domain CSVs) of each (A, B) in ``pairs``, whose sides are names of
    ``files`` joined by ``+`` ("teacher+sibling": their logit average): the records in docs/runs compare several
    models and pairs of them on the same rows this way."""
    def spec(side: str) -> str:
        return "+".join(files[name] for name in side.split("+"))

    results = []
    for a, b in pairs:
        if _is_file_side(spec(a)):
            result = compare_files(spec(a), spec(b), group_regex, n_boot)
        else:
            result = compare(spec(a), spec(b), n_boot=n_boot)
        results.append(result | {"a": a, "b": b})
    return results


def describe(result: dict) -> str:
    """One ``compare_named`` result as a line: both AUCs, and the difference with its CI in points."""
    return (f"{result['a']} ({result['auc_a']:.4f}) - {result['b']} ({result['auc_b']:.4f}): "
            f"{100 * result['difference']:+.2f} points ({100 * result['ci_low']:+.2f} to "
            f"{100 * result['ci_high']:+.2f}, {result['units']} groups)")


def on_both_sets(val: dict[str, str], wild: dict[str, str], pairs: list[tuple[str, str]]) -> list[str]:
    """``compare_named`` of ``pairs`` on DFDC validation (score files, resampling source videos) and on wild_dev
    (``FILE:MODEL`` sides, resampling ``WILD_DEV_GROUPS``), as the lines the records in docs/runs print."""
    lines = []
    for name, files, group_regex in (("DFDC validation", val, None), ("wild_dev", wild, WILD_DEV_GROUPS)):
        lines += [f"== {name}", *("  " + describe(r) for r in compare_named(files, pairs, group_regex))]
    return lines


def separation(reals_scores: str | Path, fakes_scores: str | Path) -> str:
    """ROC-AUC of a model's P(fake) on the reals of one score file against the fakes of another, as a line: whether
    it tells real faces from fakes made of them (the validation reals and their self-blends, scored apart)."""
    _, _, y_reals, p_reals = read_scores(Path(reals_scores))
    _, _, y_fakes, p_fakes = read_scores(Path(fakes_scores))
    reals, fakes = p_reals[y_reals == 0], p_fakes[y_fakes == 1]
    auc = roc_auc_score(np.r_[np.zeros(len(reals)), np.ones(len(fakes))], np.r_[reals, fakes])
    return (f"{auc:.3f} ({len(reals)} reals, {len(fakes)} fakes; median P(fake) {np.median(reals):.3f} and "
            f"{np.median(fakes):.3f})")


def _compare_files_cli(args: argparse.Namespace) -> None:
    result = compare_files(args.scores_a, args.scores_b, args.group_regex, args.n_boot)
    logger.info("%s vs %s on %d files: AUC %.4f vs %.4f, difference %+.4f (95 %% CI %+.4f to %+.4f; %d resamples of "
                "%d groups)", result["a"], result["b"], result["files"], result["auc_a"], result["auc_b"],
                result["difference"], result["ci_low"], result["ci_high"], result["n_boot"], result["units"])
    print(json.dumps(result, indent=2))


def _compare_rows_cli(args: argparse.Namespace) -> None:
    result = compare(args.scores_a, args.scores_b, args.by_group, args.n_boot)
    names = ["+".join(Path(part).stem for part in _side_parts(spec)) for spec in (args.scores_a, args.scores_b)]
    logger.info("%s vs %s: AUC %.4f vs %.4f, difference %+.4f (95 %% CI %+.4f to %+.4f; %d resamples of %d %s; "
                "A not better in %.1f %% of them)", *names, result["auc_a"],
                result["auc_b"], result["difference"], result["ci_low"], result["ci_high"], result["n_boot"],
                result["units"], "groups" if args.by_group else "rows", 100 * result["p_not_better"])
    print(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scores_a", help="scores CSV of model A (train.evaluate --scores), or FILE[:MODEL] of a "
                                    "train.cross_domain scores CSV; several joined by + for their logit average")
    p.add_argument("scores_b", help="the same of model B")
    p.add_argument("--by-row", dest="by_group", action="store_false",
                   help="resample single rows instead of whole groups (source videos)")
    p.add_argument("--group-regex", help="cross_domain files: resample together the files whose names share this "
                                         "regex's first group")
    p.add_argument("--n-boot", dest="n_boot", type=int, default=1000)
    args = p.parse_args(argv)
    try:
        if _is_file_side(args.scores_a):
            _compare_files_cli(args)
        else:
            _compare_rows_cli(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
