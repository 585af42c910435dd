"""Join trained detectors into one ``logit_average`` model folder (Hub layout), ready for ``train.release``.

    python -m train.ensemble --member models/teacher --member docs/runs/teacher-sbi-160 --out models/teacher-pair
    python -m train.release --name teacher-pair --tta --threads 2      # operating point, figures, ONNX, card

Nothing is trained or tuned: the members' weights are copied as they are and their logits averaged with equal
weights, so no figure of the ensemble was fitted on the data it is measured on. The members must share their
preprocessing (mean, std, face margin); each keeps its own input size. config.json records every member's weights
(BLAKE2b-64, the stamp the distillation records use), its validation AUC and its training record. The threshold is
a placeholder until ``train.release`` chooses the operating point.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import safetensors.torch

from deepfake_space.config import DetectorConfig
from deepfake_space.models import DeepfakeDetector, default_config
from deepfake_space.models.detector import WEIGHTS_NAME
from train.teacher_logits import weights_stamp

logger = logging.getLogger("ensemble")

# what every member must agree on: the ensemble crops and normalises a face once for all of them
SHARED_FIELDS = ("mean", "std", "face_margin", "crop_pct", "num_frames", "labels")


def _member_config(folder: Path) -> DetectorConfig:
    if not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{folder} is not a released model folder (config.json + {WEIGHTS_NAME})")
    return DetectorConfig.from_folder(folder)


def build_ensemble(members: list[Path], out: Path, command: str) -> Path:
    """Write ``out/config.json`` and ``out/model.safetensors`` for the logit average of ``members``."""
    configs = [_member_config(m) for m in members]
    first = configs[0]
    for folder, cfg in zip(members, configs):
        differ = [f for f in SHARED_FIELDS if getattr(cfg, f) != getattr(first, f)]
        if differ:
            raise ValueError(f"{folder} preprocesses faces unlike {members[0]} ({', '.join(differ)}): its logits "
                             f"cannot be averaged on one crop")
        # logit_average rebuilds each member from its registered defaults, the first member too
        if cfg.arch_args != default_config(cfg.arch).arch_args:
            raise ValueError(f"{folder}: arch_args {cfg.arch_args} differ from {cfg.arch}'s registered ones")
    config = default_config(
        "logit_average", arch_args={"members": [c.arch for c in configs], "sizes": [c.input_size for c in configs]},
        input_size=first.input_size, interpolation=first.interpolation, mean=first.mean, std=first.std,
        face_margin=first.face_margin, tta=first.tta, cam_target_layer=",".join(
            f"members.{i}.{layer}" for i, c in enumerate(configs) for layer in c.cam_target_layer.split(",")),
        cam_reshape=first.cam_reshape,
        training={"command": command, "members": [
            {"folder": str(folder), "arch": cfg.arch, "input_size": cfg.input_size, "weights": weights_stamp(str(folder)),
             "val_auc": cfg.training.get("val_auc"), "recipe": (cfg.training.get("recipe") or {}).get("file"),
             "training": cfg.training}
            for folder, cfg in zip(members, configs)]})
    model = DeepfakeDetector(config)
    state = {}
    for i, folder in enumerate(members):
        for key, value in safetensors.torch.load_file(str(folder / WEIGHTS_NAME)).items():
            state[key.replace("net.", f"net.members.{i}.", 1)] = value
    model.load_state_dict(state, strict=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    logger.info("wrote %s: %s (%.2fM params)", out, " + ".join(str(m) for m in members), model.num_params() / 1e6)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--member", type=Path, action="append", required=True,
                   help="a released model folder (two or more; the first sets the input size and the mirror average)")
    p.add_argument("--out", type=Path, required=True, help="the ensemble's folder (models/NAME to release it)")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if len(args.member) < 2:
        p.error("an ensemble needs two or more --member folders")
    try:
        build_ensemble(args.member, args.out, "python -m train.ensemble " + shlex.join(argv))
    except (FileNotFoundError, ValueError) as e:
        p.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
