"""How often a real face is called fake once uploading has degraded it: the robustness suite on real photos.

    python -m train.photo_robustness --model models/teacher --photos ../shared/data/real_photos/images \\
        --out models/teacher/photo_robustness.json [--all-photos] [--suite clean,scale1/4,h264_crf35]

``train.robustness`` measures how well a model still ranks DFDC fakes above reals under each degradation; an AUC
can hold while every P(fake) drifts up, and on a real person's face that drift is a false accusation. Each photo's
best face is cropped as ``train.transfer_set`` crops the transfer photos (the models' margin, at the DFDC crop size,
so a degradation is as harsh as in the DFDC table), degraded by each entry of ``ROBUSTNESS_SUITE`` with the same
seeded generators, and scored by the BatchNorm-folded model as the app serves it. Only the photos no student
distilled on (``train.data.photo_halves``) are used unless ``--all-photos``. A photo with no face is counted and
left out, never taken as real.

photo_robustness.json:
    {"model", "photos", "which", "n_photos", "n_scored", "no_face", "seed", "suite", "command", "threshold",
     "uncertain_band", "fake_above", "degradations": {name: {"description",
     "fake_share": {"value", "ci_low", "ci_high", "count"}, "uncertain_share", "real_share", "median_p_fake",
     "p_fake": [per face]}}}
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from deepfake_space.card_tables import photo_robustness_markdown
from deepfake_space.config import DetectorConfig
from deepfake_space.models import load_detector, resolve_model_dir
from deepfake_space.transforms import build_eval_transform
from train.cli_options import add_measure_options, measure_to_json, start
from train.cross_domain import PHOTOS_DIR, verdict_shares
from train.data import photo_halves
from train.degradations import ROBUSTNESS_SUITE, SUITE_DESCRIPTIONS
from train.evaluate import predict_scores
from train.robustness import DegradedCrops, suite_names
from train.transfer_set import photo_crops

UNSEEN = "the unseen half, train.data.photo_halves"


def photo_robustness(model: str | Path, photos: Path = PHOTOS_DIR, all_photos: bool = False,
                     suite: Sequence[str] | None = None, batch_size: int = 64, seed: int = 0, progress: bool = True,
                     command: str | None = None) -> dict:
    """Score the real photos' faces under each degradation of ``suite`` and return the photo_robustness.json dict."""
    names = suite_names(suite)
    detector = load_detector(resolve_model_dir(model)).fold_batchnorm()
    config = detector.config
    transfer, unseen = photo_halves(photos)
    files = sorted(transfer + unseen) if all_photos else unseen
    if not files:
        raise FileNotFoundError(f"{photos} holds no photos")
    crops, no_face = photo_crops(files, config.face_margin)
    if not crops:
        raise ValueError(f"no face was found in any of the {len(files)} photos of {photos}")
    images = [crop for _, crop in crops]
    transform = build_eval_transform(config)

    degradations = {}
    for name in tqdm(names, desc="degradations", disable=not progress):
        faces = DegradedCrops(images, [0] * len(images), np.arange(len(images)), name, ROBUSTNESS_SUITE[name],
                              transform, seed)
        _, p = predict_scores(detector, torch.utils.data.DataLoader(faces, batch_size=batch_size), progress=False)
        degradations[name] = {"description": SUITE_DESCRIPTIONS[name], "p_fake": p.tolist()}

    return at_decision_rule({
        "model": str(model), "photos": str(photos), "which": "all" if all_photos else UNSEEN,
        "n_photos": len(files), "n_scored": len(images), "no_face": no_face, "seed": seed,
        "suite": names, "degradations": degradations,
        "command": command or "python -m train.photo_robustness " + shlex.join(
            ["--model", str(model), "--photos", str(photos), "--suite", ",".join(names), "--seed", str(seed),
             *(["--all-photos"] if all_photos else [])]),
    }, config)


def at_decision_rule(result: dict, config: DetectorConfig) -> dict:
    """``result`` with every share recomputed from its per-face P(fake) at ``config``'s cuts: after
    ``train.operating_point`` has chosen them from these very scores, nothing needs scoring again."""
    degradations = {name: {"description": d["description"], **verdict_shares(d["p_fake"], config),
                           "p_fake": d["p_fake"]} for name, d in result["degradations"].items()}
    return {**result, "threshold": float(config.threshold), "uncertain_band": float(config.uncertain_band),
            "fake_above": float(config.fake_cut), "degradations": degradations}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors) or org/name@rev")
    p.add_argument("--photos", type=Path, default=PHOTOS_DIR, help="folder of real photos")
    p.add_argument("--all-photos", action="store_true", help="every photo, also the half the students distilled on")
    p.add_argument("--suite", help=f"comma-separated degradations (default: all of {','.join(ROBUSTNESS_SUITE)})")
    p.add_argument("--out", default="photo_robustness.json", help="JSON to write")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    add_measure_options(p, "torch and OpenCV CPU threads (default: their choice)", bootstrap=False)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv, args = start(argv, parse_args)
    result = measure_to_json(lambda: photo_robustness(
        args.model, args.photos, args.all_photos, args.suite.split(",") if args.suite else None, args.batch_size,
        args.seed, args.progress, "python -m train.photo_robustness " + shlex.join(argv)), args.out)
    print(f"{result['model']} on {result['n_scored']} real photo faces ({result['which']}; "
          f"{result['no_face']} photos without a face):")
    print(photo_robustness_markdown(result))


if __name__ == "__main__":
    main()
