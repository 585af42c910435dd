"""How far a detector's verdicts survive what uploading does to a face: the fixed degradation suite.

    python -m train.robustness --model models/teacher --data ../shared/data/dfdc_faces --split validation \\
        --out robustness.json [--suite clean,jpeg60,h264_crf23] [--limit N] [--threads N] [--seed 0]

Each degradation of ``train.degradations.ROBUSTNESS_SUITE`` is applied to every crop (the images are already face
crops, used whole as in ``train.evaluate``), then the model's own eval transform, and the BatchNorm-folded model
scores them. The split is decoded once and every degradation starts from the same pixels; the random ones (noise)
draw from a generator seeded by (seed, degradation, row), so a rerun, a subset or another suite order sees the same
noise on the same crop. ``clean`` is always scored: it is the reference.

Per degradation:
    roc_auc         ROC-AUC with its row-bootstrap 95 % CI (``train.metrics.roc_auc_ci``: the resamples of
                    ``train.evaluate``'s CIs, without bootstrapping the six other metrics 13 times over);
    auc_change      AUC under the degradation minus clean AUC on the same rows, with a paired 95 % CI that resamples
                    whole source videos (the ``group`` column: DFDC's ``original``), ``paired_auc_difference``;
    reversal_share  of the crops whose clean verdict is confident (P(fake) outside the config's uncertain band), the
                    share whose degraded verdict is the opposite confident one (fake -> real or real -> fake).

robustness.json:
    {"model", "data", "split", "n", "n_groups", "threshold", "uncertain_band", "fake_above", "n_confident_clean",
     "seed", "n_boot", "suite", "degradations": {name: {"description", "roc_auc": {"value", "ci_low", "ci_high"},
     "auc_change": {"value", "ci_low", "ci_high"}, "n_reversed", "reversal_share"}}, "command"}
"""

from __future__ import annotations

import argparse
import logging
import shlex
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from datasets import Dataset
from PIL import Image
from tqdm.auto import tqdm

from deepfake_space.card_tables import robustness_markdown
from deepfake_space.config import DetectorConfig
from deepfake_space.models import load_detector, resolve_model_dir
from deepfake_space.transforms import build_eval_transform, pil_to_rgb
from train.cli_options import add_measure_options, measure_to_json, start
from train.data import load_split
from train.degradations import ROBUSTNESS_SUITE, SUITE_DESCRIPTIONS, SuiteOp
from train.evaluate import VALIDATION_SPLIT, predict_scores, select_rows
from train.metrics import paired_auc_difference, roc_auc_ci

logger = logging.getLogger("robustness")

REFERENCE = "clean"


class DegradedCrops(torch.utils.data.Dataset):
    """Decoded crops under one degradation, each with its own seeded generator, then the model's eval transform
    (given a PIL image, exactly as ``train.evaluate`` feeds it, so ``clean`` scores what evaluate scores)."""

    def __init__(self, images: list[np.ndarray], labels: list[int], rows: np.ndarray, name: str, degrade: SuiteOp,
                 transform: Callable[[Image.Image], torch.Tensor], seed: int) -> None:
        self.images, self.labels, self.rows = images, labels, rows
        self.degrade, self.transform = degrade, transform
        self.key = [seed, zlib.crc32(name.encode())]  # stable across processes, unlike hash()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        rng = np.random.default_rng([*self.key, int(self.rows[i])])
        return self.transform(Image.fromarray(self.degrade(self.images[i], rng))), self.labels[i], i


def decode(rows: Dataset, progress: bool = True) -> list[np.ndarray]:
    """Every row's image as an RGB uint8 H x W x 3 array, decoded once for the whole suite."""
    return [np.array(pil_to_rgb(row["image"])) for row in tqdm(rows, desc="decode", disable=not progress)]


def reversals(config: DetectorConfig, p_clean: np.ndarray, p: np.ndarray) -> tuple[int, int]:
    """(confident clean verdicts, how many of them the degraded score turns into the opposite confident verdict)."""
    clean = np.array([config.verdict(float(v)) for v in p_clean])
    degraded = np.array([config.verdict(float(v)) for v in p])
    confident = clean != "uncertain"
    flipped = confident & (degraded != "uncertain") & (degraded != clean)
    return int(confident.sum()), int(flipped.sum())


def _interval(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": float(value), "ci_low": float(low), "ci_high": float(high)}


def suite_names(suite: Sequence[str] | None = None) -> list[str]:
    """The degradations to score, ``clean`` first (default: all of ``ROBUSTNESS_SUITE``); unknown names are refused."""
    names = list(dict.fromkeys([REFERENCE, *(suite or ROBUSTNESS_SUITE)]))
    unknown = [n for n in names if n not in ROBUSTNESS_SUITE]
    if unknown:
        raise ValueError(f"unknown degradations {unknown}; the suite has {', '.join(ROBUSTNESS_SUITE)}")
    return names


def robustness_table(model: str | Path, data: str | Path, split: str = VALIDATION_SPLIT,
                     suite: Sequence[str] | None = None, limit: int | None = None, batch_size: int = 64,
                     n_boot: int = 1000, seed: int = 0, progress: bool = True, command: str | None = None) -> dict:
    """Score ``model`` on ``split`` of ``data`` under each degradation of ``suite`` (default: all of
    ``ROBUSTNESS_SUITE``; ``clean`` is always added first) and return the robustness.json dict."""
    names = suite_names(suite)
    detector = load_detector(resolve_model_dir(model)).fold_batchnorm()  # as the app serves it
    config = detector.config
    transform = build_eval_transform(config)

    rows = load_split(data, split)
    index = select_rows(len(rows), limit, seed)  # the rows train.evaluate --limit scores
    if len(index) < len(rows):
        rows = rows.select(index)
    images, labels, groups = decode(rows, progress), [int(v) for v in rows["label"]], [str(g) for g in rows["group"]]

    scores: dict[str, np.ndarray] = {}
    for name in tqdm(names, desc="degradations", disable=not progress):
        crops = DegradedCrops(images, labels, index, name, ROBUSTNESS_SUITE[name], transform, seed)
        y, scores[name] = predict_scores(detector, torch.utils.data.DataLoader(crops, batch_size=batch_size),
                                         progress=False)

    p_clean = scores[REFERENCE]
    n_confident, _ = reversals(config, p_clean, p_clean)
    degradations = {}
    for name, p in scores.items():
        auc = roc_auc_ci(y, p, n_boot=n_boot, seed=seed)
        change = paired_auc_difference(y, p, p_clean, groups, n_boot=n_boot, seed=seed)
        _, n_reversed = reversals(config, p_clean, p)
        degradations[name] = {
            "description": SUITE_DESCRIPTIONS[name], "roc_auc": _interval(auc["value"], auc["ci_low"], auc["ci_high"]),
            "auc_change": _interval(change["difference"], change["ci_low"], change["ci_high"]),
            "n_reversed": n_reversed, "reversal_share": n_reversed / n_confident if n_confident else None,
        }
        logger.info("%s: AUC %.4f, change %+.4f, %d of %d confident verdicts reversed", name,
                    auc["value"], change["difference"], n_reversed, n_confident)

    return {
        "model": str(model), "data": str(data), "split": split, "n": len(y), "n_groups": len(set(groups)),
        "threshold": float(config.threshold), "uncertain_band": float(config.uncertain_band),
        "fake_above": float(config.fake_cut),
        "n_confident_clean": n_confident, "seed": seed, "n_boot": n_boot,
        "suite": names, "degradations": degradations,
        "command": command or "python -m train.robustness " + shlex.join(
            ["--model", str(model), "--data", str(data), "--split", split, "--suite", ",".join(names),
             *(["--limit", str(limit)] if limit else []), "--n-boot", str(n_boot), "--seed", str(seed)]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors) or org/name@rev")
    p.add_argument("--data", required=True, help="HF-datasets folder, parquet file or real/ fake/ folder")
    p.add_argument("--split", default=VALIDATION_SPLIT)
    p.add_argument("--suite", help=f"comma-separated degradations (default: all of {','.join(ROBUSTNESS_SUITE)})")
    p.add_argument("--limit", type=int, help="score a seeded random subset of this many rows")
    p.add_argument("--out", default="robustness.json", help="JSON to write")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    add_measure_options(p, "torch and OpenCV CPU threads (default: their choice)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv, args = start(argv, parse_args)
    suite = args.suite.split(",") if args.suite else None
    result = measure_to_json(lambda: robustness_table(
        args.model, args.data, args.split, suite=suite, limit=args.limit, batch_size=args.batch_size,
        n_boot=args.n_boot, seed=args.seed, progress=args.progress,
        command="python -m train.robustness " + shlex.join(argv)), args.out)
    print(f"{result['model']} on {result['split']} (n={result['n']}, {result['n_groups']} source videos, "
          f"{result['n_confident_clean']} confident clean verdicts):")
    print(robustness_markdown(result))


if __name__ == "__main__":
    main()
