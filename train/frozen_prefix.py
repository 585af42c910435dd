"""Self-blended fine-tuning of a teacher's last blocks on cached outputs of its frozen first blocks.

    python -m train.frozen_prefix --init models/teacher --data ../shared/data/dfdc_faces \
        --extra-train cache/transfer_photos --fakes 8000 --split-at 5 --epochs 3 --output-dir runs/teacher-sbi-prefix

On two CPU cores a full EfficientNet-Lite0 step at 224 px runs at ~4-12 images/s, so one self-blended epoch takes
hours (docs/runs/teacher-sbi-paired-1of2ep). The stem and first blocks hold a small share of the weights but most of
the compute. Here they are frozen and run once: each training row, and one self-blend of each real with landmarks,
is drawn through the teacher's own training augmentation (``SelfBlendDataset``: the blends' jitter on every row,
the upload degradations) and through blocks ``0 .. split-at - 1``; the fp16 feature maps are stored in a bank, and
the remaining blocks and the head (79 % of the weights at split 5) train on the bank for several epochs at ~3x the
speed. The price is fixed views: each blend is drawn once, where on-the-fly SBI draws a new one every epoch.

The saved model is a whole ``efficientnet_lite0`` detector in Hub layout (``OUTPUT_DIR/best``, threshold picked on
validation), scored like any other by ``train.evaluate``, ``train.cross_domain`` and the app.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate.utils import set_seed
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from deepfake_space.models import DeepfakeDetector, load_detector
from deepfake_space.runtime import OnnxModel
from deepfake_space.transforms import build_eval_transform, build_train_transform
from train.cli_options import start
from train.data import TorchImageDataset, content_fingerprint, load_split, subset, with_extra
from train.degradations import RandomDegradation
from train.export_onnx import export_fp32
from train.metrics import pick_threshold
from train.sbi import SelfBlendDataset, cached_landmarks
from train.teacher_logits import weights_stamp
from train.train import TrainState, append_csv, class_weights

logger = logging.getLogger("frozen_prefix")

PARITY = 1e-3  # max |feature difference| allowed between the ONNX prefix and PyTorch


class Prefix(nn.Module):
    """The stem and blocks ``0 .. split_at - 1`` of a timm EfficientNet (its frozen, compute-heavy part)."""

    def __init__(self, net: nn.Module, split_at: int) -> None:
        super().__init__()
        self.net, self.split_at = net, split_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net.bn1(self.net.conv_stem(x))
        for block in self.net.blocks[:self.split_at]:
            x = block(x)
        return x


class Suffix(nn.Module):
    """The rest of the same network, from the prefix's feature maps to logits (shares its parameters)."""

    def __init__(self, net: nn.Module, split_at: int) -> None:
        super().__init__()
        self.net, self.split_at = net, split_at

    def trainable(self) -> list[nn.Parameter]:
        modules = [*self.net.blocks[self.split_at:], self.net.conv_head, self.net.bn2, self.net.classifier]
        return [p for m in modules for p in m.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.net.blocks[self.split_at:]:
            x = block(x)
        return self.net.forward_head(self.net.bn2(self.net.conv_head(x)))


def onnx_prefix(prefix: Prefix, input_size: int, path: Path, threads: int = 1) -> OnnxModel:
    """The prefix in ONNX Runtime (twice PyTorch's speed per core here), checked against PyTorch."""
    export_fp32(prefix, (3, input_size, input_size), path)
    session = OnnxModel(path, threads)
    x = torch.randn(2, 3, input_size, input_size)
    with torch.inference_mode():
        diff = float((session(x) - prefix(x)).abs().max())
    if diff > PARITY:
        raise RuntimeError(f"the ONNX prefix differs from PyTorch by {diff:.2e} (at most {PARITY:.0e})")
    return session


def build_bank(prefix: Prefix, ds: torch.utils.data.Dataset, input_size: int, path: Path, batch_size: int = 64,
               num_workers: int = 1, desc: str = "bank") -> tuple[np.ndarray, np.ndarray]:
    """(features, labels): every item of ``ds`` through ``prefix``, stored as fp16 in ``path`` (.npy, with a
    .labels.npy beside it). Written under a temporary name and renamed when whole, so a bank on disk is complete."""
    labels_path = path.with_suffix(".labels.npy")
    if path.exists() and labels_path.exists():
        logger.info("bank %s exists: reusing it", path)
        return np.load(path, mmap_mode="r"), np.load(labels_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    session = onnx_prefix(prefix, input_size, path.with_suffix(".prefix.onnx"))
    with torch.inference_mode():
        shape = prefix(torch.zeros(1, 3, input_size, input_size)).shape[1:]
    partial = path.with_name(path.name + ".partial")
    features = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16, shape=(len(ds), *shape))
    labels = np.zeros(len(ds), dtype=np.int64)
    n = 0
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
    for x, y, _ in tqdm(loader, desc=desc):
        features[n:n + len(x)] = session(x).numpy().astype(np.float16)
        labels[n:n + len(x)] = y.numpy()
        n += len(x)
    features.flush()
    del features
    np.save(labels_path, labels)
    partial.rename(path)
    path.with_suffix(".prefix.onnx").unlink()
    return np.load(path, mmap_mode="r"), labels


def training_rows(args: argparse.Namespace) -> datasets.Dataset:
    """Every real row of the training split, ``--fakes`` of its fakes (seeded), and the ``--extra-train`` rows."""
    rows = load_split(args.data, "train")
    labels = np.asarray(rows["label"])
    fakes = np.flatnonzero(labels == 1)
    keep = np.flatnonzero(labels == 0)
    if args.fakes and args.fakes < len(fakes):
        fakes = np.sort(np.random.default_rng(args.seed).choice(fakes, args.fakes, replace=False))
    rows = rows.select(np.sort(np.concatenate([keep, fakes])).tolist())
    return with_extra(subset(rows, args.train_subset, args.seed), args.extra_train)


def bank_entries(labels: np.ndarray, n_rows: int, dataset_fakes: bool) -> np.ndarray:
    """Indices of the bank entries to train on. The bank holds the ``n_rows`` dataset rows, then their self-blends;
    without ``dataset_fakes`` the rows' own fakes are left out (reals against self-blends only)."""
    return np.flatnonzero((np.arange(len(labels)) >= n_rows) | (labels == 0) | dataset_fakes)


def train_one_epoch(suffix: Suffix, features: np.ndarray, labels: torch.Tensor, keep: np.ndarray, optimizer,
                    scheduler, criterion: nn.Module, args: argparse.Namespace, epoch: int, state: TrainState,
                    checkpoint: Callable[[], None]) -> float:
    """One pass over the bank entries ``keep`` in a seeded order (what is left of it after a resume); returns the
    smoothed loss. Checkpoints every ``--checkpointing-steps`` batches, so an interrupted epoch resumes at its
    exact batch."""
    suffix.train()
    order = np.random.default_rng([args.seed, epoch]).permutation(keep)
    steps = len(keep) // args.batch_size
    skip = state.step - epoch * steps
    running = 0.0
    for step in tqdm(range(skip, steps), initial=skip, total=steps, desc=f"epoch {epoch}"):
        idx = np.sort(order[step * args.batch_size:(step + 1) * args.batch_size])
        x = torch.from_numpy(np.asarray(features[idx], dtype=np.float32))
        loss = criterion(suffix(x), labels[idx])
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        state.step += 1
        running = 0.98 * running + 0.02 * loss.item() if running else loss.item()
        if args.checkpointing_steps and state.step % args.checkpointing_steps == 0 and step + 1 < steps:
            checkpoint()
    return running


@torch.inference_mode()
def validate(suffix: Suffix, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """P(fake) of every validation row."""
    suffix.eval()
    return np.concatenate([suffix(torch.from_numpy(np.asarray(features[i:i + batch_size], dtype=np.float32)))
                           .softmax(-1)[:, 1].numpy() for i in range(0, len(features), batch_size)])


def training_function(args: argparse.Namespace, argv: list[str]) -> float:
    """Build (or reuse) the banks, train the suffix, save the best epoch; returns its validation ROC-AUC."""
    set_seed(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_detector(args.init)
    config, init_record = model.config, dict(model.config.training)
    prefix, suffix = Prefix(model.net, args.split_at), Suffix(model.net, args.split_at)

    rows = training_rows(args)
    val_rows = subset(load_split(args.data, "validation"), args.val_subset, args.seed)
    stamp = f"{weights_stamp(args.init)}-at{args.split_at}"
    train_ds = SelfBlendDataset(rows, build_train_transform(config, 1.0, RandomDegradation(args.degrade, args.seed)),
                                cached_landmarks(rows, Path(args.landmark_cache)))
    logger.info("bank rows: %d (%d real, %d fake) and %d self-blends", len(rows), rows["label"].count(0),
                rows["label"].count(1), len(train_ds.sources))
    bank_dir = Path(args.bank_dir)
    train_bank = bank_dir / f"train-{content_fingerprint(rows)}-s{args.seed}-d{args.degrade}-{stamp}.npy"
    features, labels = build_bank(prefix, train_ds, config.input_size, train_bank, num_workers=args.num_workers,
                                  desc="train bank")
    val_ds = TorchImageDataset(val_rows, build_eval_transform(config))
    val_features, y_val = build_bank(prefix, val_ds, config.input_size,
                                     bank_dir / f"val-{content_fingerprint(val_rows)}-{stamp}.npy",
                                     num_workers=args.num_workers, desc="validation bank")

    params = suffix.trainable()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    keep = bank_entries(labels, len(rows), args.dataset_fakes)
    logger.info("training on %d of %d bank entries (%d fake)", len(keep), len(labels), int(labels[keep].sum()))
    steps = len(keep) // args.batch_size
    scheduler = get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, steps * args.epochs)
    criterion = nn.CrossEntropyLoss(weight=class_weights(labels[keep].tolist()))
    state, checkpoint_path = TrainState(), out / "checkpoint.pt"

    def checkpoint() -> None:
        partial = checkpoint_path.with_suffix(".partial")
        torch.save({"net": model.net.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": state.state_dict()}, partial)
        partial.rename(checkpoint_path)

    if checkpoint_path.exists():
        saved = torch.load(checkpoint_path, weights_only=False)
        model.net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state.load_state_dict(saved["state"])
        logger.info("resumed at step %d (best val AUC %.4f)", state.step, state.best_auc)

    y_labels = torch.from_numpy(labels)
    for epoch in range(state.step // steps, args.epochs):
        t0, first = time.time(), state.step
        loss = train_one_epoch(suffix, features, y_labels, keep, optimizer, scheduler, criterion, args, epoch, state,
                               checkpoint)
        p_val = validate(suffix, val_features)
        auc = float(roc_auc_score(y_val, p_val))
        improved = auc > state.best_auc
        state.best_auc = max(auc, state.best_auc)
        row = {"epoch": epoch, "step": state.step, "train_loss": round(loss, 5), "val_auc": round(auc, 5),
               "best_val_auc": round(state.best_auc, 5), "lr": scheduler.get_last_lr()[0],
               "img_per_s": round((state.step - first) * args.batch_size / (time.time() - t0), 1)}
        logger.info(json.dumps(row))
        append_csv(out / "summary.csv", row)
        if improved:
            save_best(model, out / "best", y_val, p_val, args, argv, epoch, auc, init_record)
        checkpoint()
    return state.best_auc


def save_best(model: DeepfakeDetector, folder: Path, y_val: np.ndarray, p_val: np.ndarray,
              args: argparse.Namespace, argv: list[str], epoch: int, auc: float, init_record: dict) -> None:
    """The whole detector in Hub layout, with the validation-picked threshold, the command that made it and the
    record of the model it started from."""
    model.config.threshold = pick_threshold(y_val, p_val)
    model.config.training = {
        "command": shlex.join(["python", "-m", "train.frozen_prefix", *argv]), "data": str(args.data),
        "epoch": epoch, "val_auc": round(auc, 5), "sbi": True, "extra_train": args.extra_train,
        "degrade": args.degrade,
        "frozen_prefix": {"split_at": args.split_at, "fakes": args.fakes, "dataset_fakes": args.dataset_fakes},
        "warm_start": {"from": args.init, **init_record},
    }
    model.save_pretrained(folder, config=model.config)
    logger.info("saved best model (val AUC %.4f) to %s", auc, folder)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", required=True, help="the trained efficientnet detector folder to fine-tune")
    p.add_argument("--data", default="../shared/data/dfdc_faces")
    p.add_argument("--extra-train", help="a further parquet split of real rows (train.transfer_set --no-blends)")
    p.add_argument("--fakes", type=int, default=0, help="keep this many of the split's fakes (0: all)")
    p.add_argument("--train-subset", type=int, help="a seeded subset of that many DFDC rows (a quick run)")
    p.add_argument("--val-subset", type=int)
    p.add_argument("--dataset-fakes", action=argparse.BooleanOptionalAction, default=True,
                   help="train on the split's own fakes too, or (--no-dataset-fakes) on reals against self-blends "
                        "only, as SBI does (the bank is the same either way)")
    p.add_argument("--split-at", type=int, default=5, help="blocks before this index are frozen and cached")
    p.add_argument("--degrade", type=float, default=0.5, help="strength of the upload degradations")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--checkpointing-steps", type=int, default=100, help="save state every N batches (0: epochs only)")
    p.add_argument("--landmark-cache", default="cache/landmarks")
    p.add_argument("--bank-dir", default="cache/prefix_bank")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output-dir", required=True)
    return p


def main(argv: list[str] | None = None) -> None:
    argv, args = start(argv, build_parser().parse_args)
    training_function(args, argv)


if __name__ == "__main__":
    main()
