"""Turn a training run into a released model folder: weights, config, training log, metrics, card.

    python -m train.release --run runs/teacher --name teacher --data ../shared/data/dfdc_faces

Copies ``RUN/best`` (config.json with the validation-picked threshold + model.safetensors) and the
run's per-epoch ``summary.csv`` into ``models/NAME``, evaluates it on the validation split with
``train.evaluate`` (metrics.json; the card quotes that command), and renders README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
from pathlib import Path

from deepfake_space.cards import TRAINING_LOG_FILE, write_model_card
from deepfake_space.defaults import MODELS_DIR
from train.evaluate import evaluate

RELEASE_FILES = ("config.json", "model.safetensors")


def release(run: Path, name: str, data: str, base_model: str | None = None, threads: int = 1) -> Path:
    best = run / "best"
    missing = [f for f in RELEASE_FILES if not (best / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{best} lacks {', '.join(missing)}: has the run finished an epoch?")
    folder = MODELS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in RELEASE_FILES:
        shutil.copy2(best / f, folder / f)
    shutil.copy2(run / "summary.csv", folder / TRAINING_LOG_FILE)
    import torch

    torch.set_num_threads(threads)
    rel = f"models/{name}"
    command = "python -m train.evaluate " + shlex.join(["--model", rel, "--data", data, "--split", "validation",
                                                         "--threads", str(threads),
                                                         "--out", f"{rel}/metrics.json"])
    # One crop per video in the DFDC crops, so video-level numbers would repeat the image-level ones
    # (grouping by ``original`` would merge each real video with its fakes).
    # relpath: metrics.json names the folder as the quoted command does, not by this machine's absolute path
    evaluate(os.path.relpath(folder), data, out=folder / "metrics.json", command=command)
    write_model_card(folder, base_model=base_model)
    return folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="training output_dir")
    p.add_argument("--name", required=True, help="folder name under models/")
    p.add_argument("--data", default="../shared/data/dfdc_faces")
    p.add_argument("--base-model", help="Hub repo of the teacher, for a student's card")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the latency figures")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"released {release(args.run, args.name, args.data, args.base_model, args.threads)}")


if __name__ == "__main__":
    main()
