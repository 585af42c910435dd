"""Turn a training run into a released model folder: weights, config, training log, metrics, card.

    python -m train.release --config train/configs/teacher.toml       # the recipe's last stage, as its name
    python -m train.release --run runs/teacher/restart --name teacher --data ../shared/data/dfdc_faces
    python -m train.release --name teacher                               # re-measure models/teacher as it is
    python -m train.release --config train/configs/teacher.toml --in-place   # the same, with the recipe's options

Copies ``RUN/best`` (config.json + model.safetensors) and the run's per-epoch ``summary.csv`` into
``models/NAME`` (without ``--run``, the released folder is measured again as it is), then measures it in
the order the numbers depend on each other, each step with the command that repeats it recorded beside
its result:

1. validation scores (``train.evaluate --scores``) and the full pipeline on the out-of-domain videos and real
   photos (``train.cross_domain``), per file, under ``RUN/release/``;
   and the fixed degradation suite on the faces of the real photos no student distilled on
   (``train.photo_robustness``: false accusations after upload);
2. the operating point (``train.operating_point``): the validation macro-F1 threshold, raised where needed so
   that at most ``--max-false-fake`` of those photos are called fake, and the fake cut raised until that also
   holds after each degradation;
3. at those cuts: ``metrics.json`` (validation), ``cross_domain.json``, ``robustness.json`` (the suite on
   ``--robustness-limit`` validation crops) and ``photo_robustness.json``;
4. ``model.onnx`` and ``model.int8.onnx`` with ``onnx.json`` (``train.export_onnx``: written only when they match
   the PyTorch model); then the card (README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
from pathlib import Path

import torch

from deepfake_space.card_tables import cross_domain_markdown
from deepfake_space.cards import (CROSS_DOMAIN_FILE, PHOTO_ROBUSTNESS_FILE, ROBUSTNESS_FILE, TRAINING_LOG_FILE,
                                  write_model_card)
from deepfake_space.model_choice import MODELS_DIR
from train.cross_domain import PHOTO_SCORES, PHOTOS_DIR, WILD_DIR, cross_domain_report, load_configs, measure
from train.data import photo_halves
from train.evaluate import evaluate, update_config
from train.export_onnx import export as export_onnx
from train.operating_point import choose
from train.photo_robustness import at_decision_rule, photo_robustness
from train.recipe import load_recipe
from train.robustness import robustness_table

logger = logging.getLogger("release")

RELEASE_FILES = ("config.json", "model.safetensors")


def _command(module: str, *args: str) -> str:
    return f"python -m {module} " + shlex.join(args)


def release(run: Path, name: str, data: str, base_model: str | None = None, threads: int = 1,
            wild: Path = WILD_DIR, photos: Path = PHOTOS_DIR, max_false_fake: float = 0.02,
            robustness_limit: int | None = 1000, tta: bool | None = None) -> Path:
    """Copy the run's best weights into ``models/NAME`` and measure them there (``measure_release``)."""
    best = run / "best"
    missing = [f for f in RELEASE_FILES if not (best / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{best} lacks {', '.join(missing)}: has the run finished an epoch?")
    folder = MODELS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in RELEASE_FILES:
        shutil.copy2(best / f, folder / f)
    shutil.copy2(run / "summary.csv", folder / TRAINING_LOG_FILE)
    return measure_release(folder, data, run / "release", base_model, threads, wild, photos, max_false_fake,
                           robustness_limit, tta)


def measure_release(folder: Path, data: str, scores: Path, base_model: str | None = None, threads: int = 1,
                    wild: Path = WILD_DIR, photos: Path = PHOTOS_DIR, max_false_fake: float = 0.02,
                    robustness_limit: int | None = 1000, tta: bool | None = None) -> Path:
    """Measure a released folder in place (operating point, metrics.json, cross_domain.json, robustness.json)
    and render its card; per-file scores go to ``scores``. ``tta`` (when given) is written into its config first,
    so that every figure, and the threshold, comes from the prediction the app will make."""
    torch.set_num_threads(threads)
    if tta is not None:
        update_config(folder, {"tta": tta})
    name = folder.name
    # relpath: the records name the folder as the quoted commands do, not by this machine's absolute path
    rel, model = f"models/{name}", os.path.relpath(folder)

    val_scores = scores / "val_scores.csv"
    evaluate(model, data, scores=val_scores)
    wild_rows, photo_rows, _ = measure({name: model}, wild, photos, scores)
    unseen = {p.name for p in photo_halves(photos)[1]}
    on_photos = photo_robustness(model, photos, command=_command(
        "train.photo_robustness", "--model", rel, "--photos", str(photos), "--threads", str(threads), "--out",
        f"{rel}/{PHOTO_ROBUSTNESS_FILE}"))
    choose(folder, val_scores, scores / PHOTO_SCORES, name, max_false_fake, write=True, photo_files=unseen,
           degraded=on_photos)
    configs = load_configs({name: model})  # as choose has just written them
    on_photos = at_decision_rule(on_photos, configs[name])

    # One crop per video in the DFDC crops, so video-level numbers would repeat the image-level ones
    # (grouping by ``original`` would merge each real video with its fakes).
    evaluate(model, data, out=folder / "metrics.json", command=_command(
        "train.evaluate", "--model", rel, "--data", data, "--split", "validation", "--threads", str(threads),
        "--out", f"{rel}/metrics.json"))
    report = cross_domain_report(wild_rows, photo_rows, configs, unseen_photos=unseen)
    report["command"] = _command("train.cross_domain", "--model", f"{name}={rel}", "--wild", str(wild),
                                 "--photos", str(photos), "--threads", str(threads), "--out",
                                 f"{rel}/{CROSS_DOMAIN_FILE}")
    (folder / CROSS_DOMAIN_FILE).write_text(json.dumps(report, indent=2) + "\n")
    limit = ["--limit", str(robustness_limit)] if robustness_limit else []
    robustness = robustness_table(model, data, limit=robustness_limit, command=_command(
        "train.robustness", "--model", rel, "--data", data, "--split", "validation", *limit, "--threads",
        str(threads), "--out", f"{rel}/{ROBUSTNESS_FILE}"))
    (folder / ROBUSTNESS_FILE).write_text(json.dumps(robustness, indent=2) + "\n")
    (folder / PHOTO_ROBUSTNESS_FILE).write_text(json.dumps(on_photos, indent=2) + "\n")
    logger.info("%s off DFDC:\n%s", name, cross_domain_markdown(report))
    export_onnx(folder, data, command=_command("train.export_onnx", "--model", rel, "--data", data))
    write_model_card(folder, base_model=base_model)
    return folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="a recipe: release its last stage under its name (train.recipe)")
    p.add_argument("--run", type=Path, help="training output_dir (without --config; without it, --name's released "
                                            "folder is measured again in place)")
    p.add_argument("--name", help="folder name under models/ (without --config)")
    p.add_argument("--in-place", action="store_true",
                   help="with --config: measure the released folder again as it is, with the recipe's name, base "
                        "model and tta (no run folder needed)")
    p.add_argument("--data", default="../shared/data/dfdc_faces")
    p.add_argument("--base-model", help="Hub repo of the teacher, for a student's card")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the latency figures")
    p.add_argument("--wild", type=Path, default=WILD_DIR, help="out-of-domain videos (labels.csv)")
    p.add_argument("--photos", type=Path, default=PHOTOS_DIR, help="real photos")
    p.add_argument("--max-false-fake", type=float, default=0.02,
                   help="largest share of the unseen real photos the threshold may call fake")
    p.add_argument("--robustness-limit", type=int, default=1000, help="validation crops in the robustness suite")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction,
                   help="average each face with its mirror image, or not (default: a recipe's tta, else as the "
                        "weights' config says)")
    args = p.parse_args(argv)
    if args.config:
        recipe = load_recipe(args.config)
        args.run, args.name = None if args.in_place else recipe.final.output_dir, recipe.name
        args.base_model = args.base_model or recipe.base_model
        args.tta = recipe.tta if args.tta is None else args.tta
    elif not args.name:
        p.error("--name is required without --config")
    elif args.in_place:
        p.error("--in-place goes with --config")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = (args.base_model, args.threads, args.wild, args.photos, args.max_false_fake, args.robustness_limit,
               args.tta)
    if args.run:
        folder = release(args.run, args.name, args.data, *options)
    else:
        folder = measure_release(MODELS_DIR / args.name, args.data, Path("runs/release") / args.name, *options)
    print(f"released {folder}")


if __name__ == "__main__":
    main()
