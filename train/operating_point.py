"""Choose a model's threshold and uncertain band on validation, capped so few real photos are called fake.

    python -m train.evaluate --model models/teacher --data ../shared/data/dfdc_faces --split validation \
        --scores runs/scores/teacher-val.csv
    python -m train.cross_domain --model teacher=models/teacher --scores-dir docs/baseline ...
    python -m train.photo_robustness --model models/teacher --out runs/scores/teacher-photo-robustness.json
    python -m train.operating_point --model models/teacher --val-scores runs/scores/teacher-val.csv \
        --photo-scores docs/baseline/photo_scores.csv --degraded-photos runs/scores/teacher-photo-robustness.json \
        --unseen-of ../shared/data/real_photos/images --max-false-fake 0.02 --write

The rule is ``train.metrics.pick_operating_point``: the macro-F1 threshold of the validation scores, moved up
(band kept) just far enough that at most ``--max-false-fake`` of the scored real photos get a "fake" verdict;
with ``--degraded-photos`` the fake cut then rises until the cap also holds on those photos' faces after each
upload degradation, and what lies between is "uncertain". It prints the choice beside the unconstrained one, so
what the caps cost on DFDC validation is explicit. The validation scores must come from the validation split,
never from test data. ``--write`` stores threshold, uncertain_band and fake_above in the model folder's
config.json, every other field kept, with where they came from under ``training.threshold_picked_on``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from deepfake_space.config import DetectorConfig
from deepfake_space.report import STATUS_OK
from train.compare import read_scores as read_val_scores
from train.cross_domain import read_scores as read_file_scores
from train.data import photo_halves
from train.evaluate import update_config
from train.metrics import pick_operating_point
from train.photo_robustness import UNSEEN

logger = logging.getLogger("operating_point")


def photo_scores(path: Path, name: str, files: set[str] | None = None) -> tuple[np.ndarray, int]:
    """P(fake) of ``name`` on the scored photos of a cross_domain scores CSV (only those named in ``files``, when
    given), and how many had no score."""
    rows, names = read_file_scores(path)
    if files is not None:
        rows = [r for r in rows if Path(r.file).name in files]
    if name not in names:
        raise ValueError(f"{path} has no scores for model {name!r}; it has {names} (pass --name)")
    if any(r.label != "real" for r in rows):
        raise ValueError(f"{path} holds files not labelled real: the cap is on real photos only")
    scored = [r.p_fake[name] for r in rows if r.status == STATUS_OK]
    return np.array(scored, dtype=np.float64), len(rows) - len(scored)


def degraded_photo_scores(result: dict) -> dict[str, list[float]]:
    """P(fake) of the photo faces under each degradation, from a ``train.photo_robustness`` result."""
    missing = [name for name, d in result["degradations"].items() if "p_fake" not in d]
    if result["which"] != UNSEEN:
        raise ValueError(f"the photo robustness result of {result['model']} is on {result['which']} photos: the "
                         f"cap is set on the unseen half (run train.photo_robustness without --all-photos)")
    if missing:
        raise ValueError(f"the photo robustness result of {result['model']} has no per-face P(fake) for "
                         f"{', '.join(missing)}: run train.photo_robustness again")
    return {name: d["p_fake"] for name, d in result["degradations"].items()}


def choose(model: Path, val_scores: Path, photo_scores_csv: Path, name: str | None = None,
           max_false_fake: float = 0.02, band: float | None = None, write: bool = False,
           photo_files: set[str] | None = None, degraded: dict | None = None) -> dict:
    """The operating point of ``model`` (a local folder); with ``write`` it goes into its config.json. With
    ``photo_files`` the cap holds on those photos only (the half no student distilled on); with ``degraded`` (a
    ``train.photo_robustness`` result of this model) also on their faces after each upload degradation."""
    config = DetectorConfig.from_folder(model)
    name = name or model.name
    band = config.uncertain_band if band is None else band
    _, _, y, p = read_val_scores(val_scores)
    photos, unscored = photo_scores(photo_scores_csv, name, photo_files)
    if not len(photos):
        raise ValueError(f"{photo_scores_csv} has no scored photo for {name!r}")
    result = pick_operating_point(y, p, photos, max_false_fake=max_false_fake, band=band,
                                  p_degraded_photos=degraded_photo_scores(degraded) if degraded else None)
    result.update(model=str(model), name=name, val_scores=str(val_scores), photo_scores=str(photo_scores_csv),
                  photos_unscored=unscored, previous={"threshold": config.threshold,
                                                      "uncertain_band": config.uncertain_band,
                                                      "fake_above": config.fake_above})
    if not result["cap_met"]:
        logger.warning("no rule up to threshold %.3f and fake cut %.3f keeps real photos called fake at or under "
                       "%.1f %% with band %.2f", result["threshold"], result["validation"]["fake_above"],
                       100 * max_false_fake, band)
    if write:
        rule = {"threshold": result["threshold"], "uncertain_band": band, "fake_above": result["fake_above"]}
        update_config(model, rule, {"threshold_picked_on": {
            "data": str(val_scores), "split": "validation", "n": result["n_validation"],
            "rule": "train.metrics.pick_operating_point", "max_false_fake": max_false_fake,
            "photo_scores": str(photo_scores_csv), "n_photos": result["n_photos"],
            "photos": UNSEEN if photo_files is not None else "all",
            "photo_false_fake_rate": result["photo_false_fake_rate"], "moved_by_cap": result["moved_by_cap"],
            "unconstrained_threshold": result["unconstrained"]["threshold"], "dfdc_cost": result["dfdc_cost"],
            "degraded_photos": {"command": degraded["command"], "which": degraded["which"],
                                "fake_cut_needed": {k: d["fake_cut_needed"]
                                                    for k, d in result["degraded_photos"].items()},
                                "dfdc_cost_of_fake_cut": result["dfdc_cost_of_fake_cut"]} if degraded else None}})
        logger.info("wrote threshold %.4f, uncertain band %.3f and fake cut %.4f to %s", result["threshold"], band,
                    result["validation"]["fake_above"], model / "config.json")
    return result


def summary(result: dict) -> str:
    """The choice and the unconstrained one, with what the caps cost on validation."""
    chosen, free = result["validation"], result["unconstrained"]

    def line(label: str, v: dict, photo_rate: float) -> str:
        return (f"{label}: threshold {v['threshold']:.4f} ± {result['uncertain_band']:.3f}, fake above "
                f"{v['fake_above']:.4f}; validation macro-F1 "
                f"{v['macro_f1']:.4f}, fakes called fake {100 * v['fake_recall']:.1f} %, reals called fake "
                f"{100 * v['false_fake_rate']:.1f} %, uncertain {100 * v['uncertain_rate']:.1f} %; real photos "
                f"called fake {100 * photo_rate:.1f} % (of {result['n_photos']})")

    cost = result["dfdc_cost"]
    return "\n".join([
        line(f"{result['name']} chosen (cap {100 * result['max_false_fake']:.1f} %)", chosen,
             result["photo_false_fake_rate"]),
        line("unconstrained (validation macro-F1 only)", free, free["photo_false_fake_rate"]),
        f"DFDC cost of the cap: macro-F1 -{cost['macro_f1']:.4f}, fake recall -{100 * cost['fake_recall']:.1f} "
        f"points" if result["moved_by_cap"] else "the cap is already met: no DFDC cost",
        *([f"the fake cut that holds the cap on degraded photos ({worst(result)} needs the highest) costs "
           f"{100 * result['dfdc_cost_of_fake_cut']['fake_recall']:.1f} points of fake recall"]
          if result["fake_above"] is not None else []),
    ])


def worst(result: dict) -> str:
    """The degradation of the photos that needs the highest fake cut."""
    return max(result["degraded_photos"], key=lambda k: result["degraded_photos"][k]["fake_cut_needed"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model folder (config.json)")
    p.add_argument("--val-scores", dest="val_scores", type=Path, required=True,
                   help="validation scores CSV of train.evaluate --scores (index,group,label,p_fake)")
    p.add_argument("--photo-scores", dest="photo_scores", type=Path, required=True,
                   help="real-photo scores CSV of train.cross_domain (photo_scores.csv)")
    p.add_argument("--name", help="the model's column in --photo-scores (default: the folder's name)")
    p.add_argument("--max-false-fake", dest="max_false_fake", type=float, default=0.02,
                   help="largest share of real photos that may be called fake")
    p.add_argument("--band", type=float, help="uncertain band (default: the model's current one)")
    p.add_argument("--unseen-of", dest="unseen_of", type=Path, metavar="PHOTOS_DIR",
                   help="cap on the half of PHOTOS_DIR that no student distilled on (train.data.photo_halves)")
    p.add_argument("--degraded-photos", dest="degraded_photos", type=Path, metavar="JSON",
                   help="train.photo_robustness result of this model: the cap also holds after each degradation")
    p.add_argument("--write", action="store_true",
                   help="write threshold, band and fake cut into the model's config.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        unseen = {f.name for f in photo_halves(args.unseen_of)[1]} if args.unseen_of else None
        degraded = json.loads(args.degraded_photos.read_text()) if args.degraded_photos else None
        result = choose(args.model, args.val_scores, args.photo_scores, args.name, args.max_false_fake, args.band,
                        args.write, unseen, degraded)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(summary(result))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
