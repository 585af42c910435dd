"""Cross-domain check: the full pipeline, face detection included, on out-of-domain videos and real photos.

    python -m train.cross_domain --model teacher=models/teacher --model student-kd=models/student-kd \
        --out cross_domain.json --scores-dir docs/baseline --threads 1
    python -m train.cross_domain --model teacher=models/teacher --model student-kd=models/student-kd \
        --from-scores docs/baseline --out cross_domain.json   # thresholds re-chosen: no re-run needed

DFDC validation measures face crops from the training distribution; this measures what a user of the app
sees. All models share one ``Detector``, so faces are found once per file and every model scores the same
crops, as in the app.

- wild (``labels.csv``: path,label,...): video ROC-AUC with a percentile-bootstrap 95 % CI over the scored
  files, and the verdict counts (fake / real / uncertain, at the model's threshold and uncertain band) per
  true label. The set is small (about 43 videos, and DeepFaceLive halves come in pairs): read the CI, never
  select a model on it.
- photos (real photos, all label real): among the photos where a face was found, the share called fake
  (Wilson 95 % CI), uncertain and real, and the raw P(fake) list; the share where no face was found.

A file with no face, or one that fails, gets no score: it is counted and listed, left out of every metric,
and never taken as real. Per-file scores go to SCORES_DIR/wild_scores.csv and photo_scores.csv (file, label,
status, <model>_p_fake, message); ``--from-scores DIR`` recomputes the report from them with the thresholds now
in the model folders' config.json. The report is also written as Markdown for model cards (OUT with .md).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from deepfake_space.card_tables import cross_domain_markdown
from deepfake_space.cli import list_inputs
from deepfake_space.config import DetectorConfig
from deepfake_space.model_choice import model_specs
from deepfake_space.detector import Detector
from deepfake_space.errors import DeepfakeSpaceError
from deepfake_space.media import DEFAULT_NUM_FRAMES
from deepfake_space.models import resolve_model_dir
from deepfake_space.report import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK
from train.cli_options import add_measure_options, start
from train.data import photo_halves
from train.metrics import roc_auc_ci, wilson_interval

logger = logging.getLogger("cross_domain")

WILD_DIR = Path("../shared/data/wild_dev")
PHOTOS_DIR = Path("../shared/data/real_photos/images")
WILD_SCORES, PHOTO_SCORES = "wild_scores.csv", "photo_scores.csv"
LABELS = ("real", "fake")
VERDICTS = ("fake", "real", "uncertain")
SMALL_N_NOTE = ("The wild set is small (n is about 43 videos, DeepFaceLive halves in pairs): its CIs are wide. "
                "Read it beside the DFDC validation figures; never select a model on it.")


@dataclass
class Scored:
    """One file's outcome: its P(fake) per model, or none at all (status no_face / error)."""

    file: str
    label: str
    status: str
    p_fake: dict[str, float | None] = field(default_factory=dict)
    message: str = ""


def read_wild(folder: Path) -> list[tuple[str, str]]:
    """(path relative to ``folder``, label) of each row of ``folder/labels.csv``."""
    with (folder / "labels.csv").open(newline="") as f:
        rows = [(r["path"], r["label"]) for r in csv.DictReader(f)]
    bad = sorted({label for _, label in rows if label not in LABELS})
    if bad:
        raise ValueError(f"{folder / 'labels.csv'}: labels must be real or fake, got {bad}")
    return rows


def list_photos(folder: Path) -> list[tuple[str, str]]:
    """Every media file under ``folder`` (relative path), all labelled real."""
    return [(str(p.relative_to(folder)), "real") for p in list_inputs(folder)]


def score_files(detector: Detector, root: Path, items: list[tuple[str, str]], desc: str,
                progress: bool = True) -> list[Scored]:
    """Run the full pipeline on each file; a failure is recorded as an error row, never guessed."""
    names = [m.name for m in detector.models]
    rows = []
    for rel, label in tqdm(items, desc=desc, disable=not progress):
        try:
            report = detector.analyze(root / rel).report
            p_fake = {m.name: m.p_fake for m in report.models} if report.status == STATUS_OK else {}
            row = Scored(rel, label, report.status, p_fake, report.message)
        except Exception as e:  # one bad file never stops the run
            logger.exception("unexpected failure on %s", rel)
            row = Scored(rel, label, STATUS_ERROR, {}, f"unexpected error: {e}")
        row.p_fake = {n: row.p_fake.get(n) for n in names}
        logger.debug("%s (%s): %s %s", rel, label, row.status, row.p_fake)
        rows.append(row)
    return rows


def write_scores(path: Path, rows: list[Scored], names: list[str]) -> None:
    """CSV of per-file scores; floats written with ``repr`` so a re-read reproduces the report exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "status", *[f"{n}_p_fake" for n in names], "message"])
        for r in rows:
            writer.writerow([r.file, r.label, r.status, *["" if r.p_fake[n] is None else repr(r.p_fake[n])
                                                          for n in names], r.message])


def read_scores(path: Path) -> tuple[list[Scored], list[str]]:
    """Rows and model names of a ``write_scores`` CSV."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        names = [c.removesuffix("_p_fake") for c in reader.fieldnames or [] if c.endswith("_p_fake")]
        rows = [Scored(r["file"], r["label"], r["status"],
                       {n: float(r[f"{n}_p_fake"]) if r[f"{n}_p_fake"] else None for n in names}, r["message"])
                for r in reader]
    return rows, names


def load_configs(specs: dict[str, str]) -> dict[str, DetectorConfig]:
    """Each model's config.json (threshold, uncertain band) without loading its weights."""
    return {name: DetectorConfig.from_folder(resolve_model_dir(spec))
            for name, spec in specs.items()}


def _status_counts(rows: list[Scored]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in (STATUS_OK, STATUS_NO_FACE, STATUS_ERROR)}


def _unscored(rows: list[Scored]) -> list[dict[str, str]]:
    return [{"file": r.file, "label": r.label, "status": r.status, "message": r.message}
            for r in rows if r.status != STATUS_OK]


def _share(count: int, n: int) -> float | None:
    return count / n if n else None


def _scored(rows: list[Scored], name: str) -> list[tuple[str, float]]:
    return [(r.label, r.p_fake[name]) for r in rows if r.status == STATUS_OK]


def wild_model_report(rows: list[Scored], name: str, config: DetectorConfig, n_boot: int = 1000,
                      seed: int = 0) -> dict:
    """One model on the labelled videos: AUC over the scored files, and verdict counts per true label."""
    scored = _scored(rows, name)
    y = np.array([LABELS.index(label) for label, _ in scored], dtype=int)
    p = np.array([prob for _, prob in scored], dtype=np.float64)
    verdicts = {label: {v: 0 for v in VERDICTS} for label in LABELS}
    for label, prob in scored:
        verdicts[label][config.verdict(prob)] += 1
    decided = sum(verdicts[label][v] for label in LABELS for v in LABELS)
    correct = sum(verdicts[label][label] for label in LABELS)
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    return {
        "n_scored": len(scored), "n_real": n_real, "n_fake": n_fake,
        "roc_auc": roc_auc_ci(y, p, n_boot=n_boot, seed=seed) if n_real and n_fake else None,
        "verdicts": verdicts,
        "accuracy_decided": _share(correct, decided), "decided_share": _share(decided, len(scored)),
        "fake_recall": _share(verdicts["fake"]["fake"], n_fake),
        "false_fake_rate": _share(verdicts["real"]["fake"], n_real),
    }


def photo_model_report(rows: list[Scored], name: str, config: DetectorConfig) -> dict:
    """One model on real photos: shares of the scored photos called fake (Wilson 95 % CI), uncertain, real."""
    p = [prob for _, prob in _scored(rows, name)]
    return {"n_scored": len(p), **verdict_shares(p, config), "p_fake": p}


def verdict_shares(p: list[float], config: DetectorConfig) -> dict:
    """Shares of real faces' P(fake) ``p`` that ``config`` calls fake (Wilson 95 % CI), uncertain and real, and
    their median: a false accusation rate, whatever the real faces are (``train.photo_robustness`` too)."""
    counts = {v: sum(config.verdict(prob) == v for prob in p) for v in VERDICTS}
    low, high = wilson_interval(counts["fake"], len(p))
    return {
        "fake_share": {"value": _share(counts["fake"], len(p)), "ci_low": low, "ci_high": high,
                       "count": counts["fake"]},
        "uncertain_share": _share(counts["uncertain"], len(p)), "real_share": _share(counts["real"], len(p)),
        "median_p_fake": float(np.median(p)) if p else None,
    }


def cross_domain_report(wild: list[Scored], photos: list[Scored], configs: dict[str, DetectorConfig],
                        n_boot: int = 1000, seed: int = 0, unseen_photos: set[str] | None = None) -> dict:
    """The whole report from per-file scores, at each model's threshold and uncertain band in ``configs``.
    ``unseen_photos`` (file names) adds the photo figures on that subset alone: the photos no student trained on."""
    unseen = [r for r in photos if unseen_photos is not None and Path(r.file).name in unseen_photos]
    wild_labels = {label: sum(r.label == label for r in wild) for label in LABELS}
    photo_status = _status_counts(photos)
    return {
        "models": {n: {"threshold": c.threshold, "uncertain_band": c.uncertain_band, "fake_above": c.fake_cut}
                   for n, c in configs.items()},
        "wild": {
            "n_files": len(wild), "labels": wild_labels, "status": _status_counts(wild),
            "unscored_by_label": {label: {s: sum(r.label == label and r.status == s for r in wild)
                                          for s in (STATUS_NO_FACE, STATUS_ERROR)} for label in LABELS},
            "unscored_files": _unscored(wild),
            "models": {n: wild_model_report(wild, n, c, n_boot, seed) for n, c in configs.items()},
        },
        "photos": {
            "n_files": len(photos), "status": photo_status,
            "no_face_share": _share(photo_status[STATUS_NO_FACE], len(photos)),
            "error_share": _share(photo_status[STATUS_ERROR], len(photos)),
            "unscored_files": _unscored(photos),
            "models": {n: photo_model_report(photos, n, c) for n, c in configs.items()},
            "unseen": {"n_files": len(unseen), "models": {n: photo_model_report(unseen, n, c)
                                                          for n, c in configs.items()}} if unseen else None,
        },
        "n_boot": n_boot, "seed": seed, "note": SMALL_N_NOTE,
    }


def measure(specs: dict[str, str], wild_dir: Path, photos_dir: Path, scores_dir: Path, limit: int | None = None,
            device: str = "auto", num_frames: int = DEFAULT_NUM_FRAMES,
            progress: bool = True) -> tuple[list[Scored], list[Scored], dict[str, DetectorConfig]]:
    """Score the wild videos and the photos with every model in one Detector and save the per-file CSVs."""
    wild_items, photo_items = read_wild(wild_dir)[:limit], list_photos(photos_dir)[:limit]
    with Detector(specs, device=device, num_frames=num_frames) as detector:
        names = [m.name for m in detector.models]
        configs = {m.name: m.model.config for m in detector.models}
        wild = score_files(detector, wild_dir, wild_items, "wild videos", progress)
        write_scores(scores_dir / WILD_SCORES, wild, names)
        photos = score_files(detector, photos_dir, photo_items, "real photos", progress)
        write_scores(scores_dir / PHOTO_SCORES, photos, names)
    logger.info("wrote per-file scores to %s and %s", scores_dir / WILD_SCORES, scores_dir / PHOTO_SCORES)
    return wild, photos, configs


def load_scores(scores_dir: Path,
                specs: dict[str, str]) -> tuple[list[Scored], list[Scored], dict[str, DetectorConfig]]:
    """Per-file scores saved by an earlier run, with the models' current configs."""
    wild, wild_names = read_scores(scores_dir / WILD_SCORES)
    photos, photo_names = read_scores(scores_dir / PHOTO_SCORES)
    missing = sorted(set(specs) - (set(wild_names) & set(photo_names)))
    if missing:
        raise ValueError(f"{scores_dir} holds no scores for {missing}; it has {sorted(wild_names)}")
    return wild, photos, load_configs(specs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, metavar="NAME=SPEC",
                   help="a model (folder or org/name@rev); repeat for several: all run in one Detector")
    p.add_argument("--wild", type=Path, default=WILD_DIR, help="folder with labels.csv (path,label,...)")
    p.add_argument("--photos", type=Path, default=PHOTOS_DIR, help="folder of real photos")
    p.add_argument("--out", type=Path, default=Path("cross_domain.json"), help="report JSON (and .md beside it)")
    p.add_argument("--scores-dir", dest="scores_dir", type=Path,
                   help="where the per-file score CSVs go (default: beside --out)")
    p.add_argument("--from-scores", dest="from_scores", type=Path, metavar="DIR",
                   help="recompute the report from the score CSVs in DIR instead of running the pipeline")
    p.add_argument("--limit", type=int, help="only the first N files of each set (a quick look)")
    p.add_argument("--frames", type=int, default=DEFAULT_NUM_FRAMES, help="frames sampled per video")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_measure_options(p, "torch CPU threads (use 1 when other work shares the cores)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv, args = start(argv, parse_args)
    try:
        specs = model_specs(args.model)
        if args.from_scores:
            wild, photos, configs = load_scores(args.from_scores, specs)
        else:
            wild, photos, configs = measure(specs, args.wild, args.photos, args.scores_dir or args.out.parent,
                                            args.limit, args.device, args.frames, args.progress)
    except (DeepfakeSpaceError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    unseen = {p.name for p in photo_halves(args.photos)[1]} if args.photos.is_dir() else None
    report = cross_domain_report(wild, photos, configs, n_boot=args.n_boot, seed=args.seed, unseen_photos=unseen)
    report["sources"] = ({"from_scores": str(args.from_scores), "specs": specs} if args.from_scores else
                         {"wild": str(args.wild), "photos": str(args.photos), "specs": specs, "frames": args.frames,
                          "limit": args.limit, "torch_threads": torch.get_num_threads()})
    report["command"] = "python -m train.cross_domain " + shlex.join(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    markdown = cross_domain_markdown(report)
    args.out.with_suffix(".md").write_text(markdown)
    logger.info("wrote %s and %s", args.out, args.out.with_suffix(".md"))
    print(markdown)


if __name__ == "__main__":
    main()
