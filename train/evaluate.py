"""Evaluate a released detector on a labelled split of face crops: metrics with 95 % CIs, scores, speed.

    python -m train.evaluate --model runs/teacher/best --data ../shared/data/dfdc_faces --split validation \
        --out metrics.json --scores scores.csv --group-by original

The images are already face crops, so each is used whole (no face detection) with the model's own
eval transform (its config.json), exactly as at training time. Metrics come from
``train.metrics.compute_metrics`` at the threshold in the model's config (bootstrap 95 % CIs); with
``--group-by COLUMN`` the rows are also pooled per group (mean P(fake); the group is fake if any row
is) into ``video_metrics``. Latency is the median of timed batch-1 predictions on CPU after a
warm-up, the same prediction the scores came from (with ``--tta``, the image and its mirror); throughput is
measured at ``--batch-size``.

``--pick-threshold`` picks the decision threshold on this split (``train.metrics.pick_threshold``) and
writes it into the model folder's config.json. It is only allowed on the validation split: a threshold
is never picked on test data.

metrics.json:
    {"model", "data", "split", "n", "threshold", "metrics": {name: {"value", "ci_low", "ci_high"}},
     "video_metrics" (with --group-by), "latency_ms_per_image", "throughput_img_s", "params",
     "file_size_mb", "command", ...}
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from deepfake_space.config import DetectorConfig
from deepfake_space.errors import ModelLoadError
from deepfake_space.models import DeepfakeDetector, load_detector, resolve_model_dir
from deepfake_space.runtime import OnnxModel
from deepfake_space.timing import median_seconds
from deepfake_space.transforms import build_eval_transform
from train.cli_options import add_measure_options, start
from train.data import TorchImageDataset, load_split
from train.metrics import compute_metrics, pick_threshold, rows_by_group
from train.predict import predict

logger = logging.getLogger("evaluate")

VALIDATION_SPLIT = "validation"


class ThresholdOnTestError(ValueError):
    """--pick-threshold was asked for on a split other than validation."""


def select_rows(n_rows: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Row indices to evaluate: all rows, or a seeded random ``limit`` of them in file order."""
    if limit is None or limit >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).permutation(n_rows)[:limit])


def predict_scores(model: DeepfakeDetector | OnnxModel, loader: torch.utils.data.DataLoader,
                   tta: bool | None = None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels and P(fake) for every row; with ``tta`` (a detector's default: its config's) the logits of each image
    and its mirror are averaged. An ONNX session has no config, so it must be told."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    elif tta is None:
        raise ValueError("an ONNX model has no config to say whether it averages with the mirror: pass tta")
    y, p = predict(lambda x: model.predict_proba(x, tta=tta), loader, "evaluate", progress)
    return y, p.numpy().astype(np.float64)


def group_scores(groups: list[str], y: np.ndarray, p: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pool rows per group: mean P(fake); the group's label is the max label (fake if any row is fake)."""
    order = rows_by_group(groups)
    names = list(order)
    gy = np.array([y[order[g]].max() for g in names], dtype=int)
    gp = np.array([p[order[g]].mean() for g in names], dtype=np.float64)
    return names, gy, gp


@torch.inference_mode()
def measure_speed(model: DeepfakeDetector, sample: torch.Tensor, batch_size: int, tta: bool = False,
                  warmup: int = 3, runs: int = 10, batch_runs: int = 3) -> tuple[float, float]:
    """(median ms per image at batch 1, images/s at ``batch_size``) on CPU, of the same prediction the scores
    came from (with ``tta``, both the image and its mirror)."""
    model.eval()
    one = sample.unsqueeze(0)
    batch = sample.unsqueeze(0).expand(batch_size, *sample.shape).contiguous()
    latency_ms = median_seconds(lambda: model.predict_proba(one, tta=tta), runs, warmup) * 1000
    return latency_ms, batch_size / median_seconds(lambda: model.predict_proba(batch, tta=tta), batch_runs, warmup=1)


def update_config(folder: Path, fields: dict, record: dict | None = None) -> None:
    """Set ``fields`` in ``folder/config.json`` in one atomic write, keeping every other field and refusing a config
    the app could not load; ``record`` (where the new values came from) is merged into its ``training``."""
    path = folder / "config.json"
    config = {**json.loads(path.read_text()), **fields}
    if record:
        config["training"] = {**(config.get("training") or {}), **record}
    DetectorConfig(**config)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_scores(path: Path, index: np.ndarray, groups: list[str], y: np.ndarray, p: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "group", "label", "p_fake"])
        for i, g, label, prob in zip(index, groups, y, p):
            writer.writerow([int(i), g, int(label), f"{prob:.6f}"])


def evaluate(model: str, data: str, split: str = VALIDATION_SPLIT, out: str | Path | None = None,
             scores: str | Path | None = None, group_by: str | None = None, batch_size: int = 64,
             limit: int | None = None, tta: bool | None = None, pick_threshold_on_split: bool = False,
             num_workers: int = 0, n_boot: int = 1000, seed: int = 0, latency_runs: int = 10,
             progress: bool = True, command: str | None = None) -> dict:
    """Evaluate ``model`` (folder or Hub spec) on ``split`` of ``data`` and return the metrics.json dict."""
    if pick_threshold_on_split and split != VALIDATION_SPLIT:
        raise ThresholdOnTestError(
            f"--pick-threshold is only allowed on the {VALIDATION_SPLIT!r} split, not {split!r}: thresholds are "
            f"never picked on test data")
    if pick_threshold_on_split and not Path(model).expanduser().is_dir():
        raise ModelLoadError(f"--pick-threshold writes config.json of a local model folder; {model!r} is not one")
    folder = resolve_model_dir(model)
    detector = load_detector(folder).fold_batchnorm()  # as the app serves it
    config = detector.config
    tta = config.uses_tta(tta)

    rows = load_split(data, split, group_column=group_by)
    index = select_rows(len(rows), limit, seed)
    if len(index) < len(rows):
        rows = rows.select(index)
    loader = torch.utils.data.DataLoader(TorchImageDataset(rows, build_eval_transform(config)),
                                         batch_size=batch_size, num_workers=num_workers)
    y, p = predict_scores(detector, loader, tta=tta, progress=progress)
    groups = [str(g) for g in rows["group"]]

    threshold = config.threshold
    if pick_threshold_on_split:
        threshold = pick_threshold(y, p)
        update_config(folder, {"threshold": threshold},
                      {"threshold_picked_on": {"data": str(data), "split": split, "n": int(len(y)), "tta": tta}})
        logger.info("picked threshold %.4f on %s/%s and wrote it to %s", threshold, data, split,
                    folder / "config.json")

    result: dict = {
        "model": str(model), "data": str(data), "split": split, "n": int(len(y)), "threshold": float(threshold),
        "threshold_picked_here": bool(pick_threshold_on_split), "tta": bool(tta),
        "metrics": compute_metrics(y, p, threshold=threshold, n_boot=n_boot, seed=seed),
    }
    if group_by:
        _, gy, gp = group_scores(groups, y, p)
        result["group_by"] = group_by
        result["n_groups"] = int(len(gy))
        if len(np.unique(gy)) == 2:
            result["video_metrics"] = compute_metrics(gy, gp, threshold=threshold, n_boot=n_boot, seed=seed)
        else:
            logger.warning("every %s group has the same label: no video-level metrics", group_by)

    sample = loader.dataset[0][0]
    result["latency_ms_per_image"], result["throughput_img_s"] = measure_speed(
        detector, sample, batch_size, tta=tta, runs=latency_runs)
    result["torch_threads"] = torch.get_num_threads()
    result["params"] = int(detector.num_params())
    weights = folder / "model.safetensors"
    result["file_size_mb"] = round(weights.stat().st_size / 2**20, 3)
    result["command"] = command or "python -m train.evaluate " + shlex.join(
        ["--model", str(model), "--data", str(data), "--split", split])

    if scores:
        write_scores(Path(scores), index, groups, y, p)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors) or org/name@rev")
    p.add_argument("--data", required=True, help="HF-datasets folder, parquet file or real/ fake/ folder")
    p.add_argument("--split", default=VALIDATION_SPLIT)
    p.add_argument("--out", default="metrics.json", help="metrics JSON to write")
    p.add_argument("--scores", help="CSV of per-image scores to write (index, group, label, p_fake)")
    p.add_argument("--group-by", dest="group_by",
                   help="column whose values group rows into videos (e.g. original, video): adds video_metrics")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    p.add_argument("--limit", type=int, help="evaluate a seeded random subset of this many rows")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction,
                   help="average the logits of each image and its mirror, or not (default: as the config says)")
    p.add_argument("--pick-threshold", dest="pick_threshold", action="store_true",
                   help="pick the threshold on this split (validation only) and write it to the model's config.json")
    p.add_argument("--num-workers", dest="num_workers", type=int, default=0)
    p.add_argument("--latency-runs", dest="latency_runs", type=int, default=10,
                   help="timed batch-1 forwards behind the latency figure (at least 1)")
    add_measure_options(p, "torch CPU threads (default: torch's choice); latency depends on it")
    args = p.parse_args(argv)
    if args.latency_runs < 1:
        p.error(f"--latency-runs must be at least 1, got {args.latency_runs}")
    return args


def main(argv: list[str] | None = None) -> None:
    argv, args = start(argv, parse_args)
    try:
        result = evaluate(args.model, args.data, args.split, out=args.out, scores=args.scores, group_by=args.group_by,
                          batch_size=args.batch_size, limit=args.limit, tta=args.tta,
                          pick_threshold_on_split=args.pick_threshold, num_workers=args.num_workers,
                          n_boot=args.n_boot, seed=args.seed, latency_runs=args.latency_runs,
                          progress=args.progress, command="python -m train.evaluate " + shlex.join(argv))
    except (ThresholdOnTestError, ModelLoadError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    m = result["metrics"]
    print(f"{result['model']} on {result['split']} (n={result['n']}, threshold {result['threshold']:.3f}): "
          f"AUC {m['roc_auc']['value']:.4f} [{m['roc_auc']['ci_low']:.4f}, {m['roc_auc']['ci_high']:.4f}], "
          f"accuracy {m['accuracy']['value']:.4f}, EER {m['eer']['value']:.4f}, "
          f"{result['latency_ms_per_image']:.1f} ms/image, {result['throughput_img_s']:.1f} img/s")


if __name__ == "__main__":
    main()
