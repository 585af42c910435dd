"""Consistent distillation on CPU: a bank of fixed augmented views, each stored with the teacher's logits on it.

Cached logits of the clean crop (``train.teacher_logits``) disagree with what a student trained on augmented
crops sees: on 600 training rows the teacher's logit margin moved by 1.1 on average (against a mean |margin| of
3.1) between the clean crop and one augmented view. Running the teacher on every augmented batch would fix
that ("a good teacher is patient and consistent", Beyer et al. 2022) but costs ~16 min of 2 CPU cores per
epoch. Here each view is drawn once, with a seed fixed per (view, row): the teacher's own training augmentation
at its own input size gives the teacher's logits, and the same view, resized to the student's input size, is
stored as uint8 for the student. Epoch e then trains on view (e + row) mod K of every row, with soft targets
that belong to exactly the pixels the student sees.

With ``degrade`` the student's copy of each view also goes through a random chain of upload degradations
(``train.degradations.RandomDegradation``, seeded per view) after the teacher scored the view as it was: the
teacher judges the clean face, the student learns to give the same answer on a re-encoded, noisy or down-scaled
copy of it, so it is trained to be at least as robust as its teacher.

Each view is its own ``.npy`` (images) and ``.safetensors`` (logits and what they depend on), written when
that view is done, so an interrupted bank resumes at the next view and a stale one is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from safetensors.torch import save_file

from deepfake_space.config import DetectorConfig
from deepfake_space.models import default_config, load_detector
from deepfake_space.transforms import (build_input_transform, build_train_transform, denormalize, model_layout,
                                       resize_batch)
from train.data import TorchImageDataset, load_split, with_extra
from train.degradations import RandomDegradation
from train.predict import predict
from train.teacher_logits import read_logits, teacher_identity

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's and Python's RNGs (the augmentations use both) seeded, restoring them after."""
    python_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)


class SeededViews(TorchImageDataset):
    """Row i of view k is always the same augmented image: its seed is a function of (seed, k, i) only."""

    def __init__(self, ds: Dataset, transform: Callable, view: int, seed: int) -> None:
        super().__init__(ds, transform)
        self.view, self.seed = view, seed

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        with seeded(self.seed + 1_000_003 * self.view + i):
            return super().__getitem__(i)


def _to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8)


def to_student_pixels(x: torch.Tensor, teacher: DetectorConfig, student: DetectorConfig,
                      degrade: RandomDegradation | None = None) -> torch.Tensor:
    """A batch prepared for the teacher -> (B, S, S, 3) uint8 at the student's input size; ``degrade`` runs on
    each image at the teacher's size, before the resize, as an upload is degraded before its face is cropped."""
    rgb = denormalize(x, teacher)
    if degrade is not None:
        images = _to_uint8(rgb).permute(0, 2, 3, 1).numpy()
        rgb = torch.from_numpy(np.stack([degrade(np.ascontiguousarray(img)) for img in images]))
        rgb = rgb.permute(0, 3, 1, 2).float() / 255
    return _to_uint8(resize_batch(rgb, student.input_size)).permute(0, 2, 3, 1)


@torch.no_grad()
def compute_view(teacher_spec: str, student: DetectorConfig, rows: Dataset, view: int, seed: int,
                 batch_size: int = 16, num_workers: int = 1, degrade: float = 0.0) -> tuple[np.ndarray, torch.Tensor]:
    """One view of every row: the student's pixels (N, S, S, 3) uint8 and the teacher's logits (N, 2). The
    student's pixels are degraded at strength ``degrade`` (0: as the teacher saw them); the chain's generator is
    seeded by (seed, view) and draws in row order, so a view is the same on every run."""
    teacher = load_detector(teacher_spec).to(memory_format=torch.channels_last)
    views = SeededViews(rows, build_train_transform(teacher.config), view, seed)
    loader = torch.utils.data.DataLoader(views, batch_size=batch_size, num_workers=num_workers)
    chain = RandomDegradation(degrade, seed=seed + 1_000_003 * view) if degrade else None
    pixels = []
    _, logits = predict(lambda x: teacher(model_layout(x)).float(), loader, f"teacher view {view}",
                        also=lambda x: pixels.append(to_student_pixels(x, teacher.config, student, chain)))
    return torch.cat(pixels).numpy(), logits


def _identity(teacher_spec: str, student: DetectorConfig, rows: Dataset, view: int, seed: int,
              degrade: float) -> dict[str, str]:
    return teacher_identity(teacher_spec, rows) | {
        "view": str(view), "seed": str(seed), "student_size": str(student.input_size)} | (
        {"degrade": str(degrade)} if degrade else {})


def view_bank(teacher_spec: str, student: DetectorConfig, rows: Dataset, views: int, folder: Path,
              seed: int = 0, batch_size: int = 16, degrade: float = 0.0) -> tuple[list[np.ndarray], torch.Tensor]:
    """``views`` views of ``rows``: a list of read-only (N, S, S, 3) uint8 arrays and logits (views, N, 2),
    read from ``folder`` where they match, computed (and saved, one view at a time) where missing. ``degrade``:
    the strength of the upload degradations on the student's pixels (``compute_view``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, logits = [], []
    for k in range(views):
        identity = _identity(teacher_spec, student, rows, k, seed, degrade)
        stem = folder / f"view{k}"
        logits_path = stem.with_suffix(".safetensors")
        view_logits = read_logits(logits_path, identity, "teacher, data or seed",
                                  f"delete {folder} or pass another --teacher-views-dir")
        if view_logits is not None:
            logger.info("using teacher view %d from %s", k, folder)
        else:
            pixels, view_logits = compute_view(teacher_spec, student, rows, k, seed, batch_size, degrade=degrade)
            partial = stem.with_suffix(f".{os.getpid()}.partial.npy")
            np.save(partial, pixels)
            partial.rename(stem.with_suffix(".npy"))
            save_file({"logits": view_logits}, str(logits_path), metadata=identity)
            logger.info("saved teacher view %d of %d rows to %s", k, len(rows), folder)
        logits.append(view_logits)
        images.append(np.load(stem.with_suffix(".npy"), mmap_mode="r"))
    return images, torch.stack(logits)


class ViewBankDataset(torch.utils.data.Dataset):
    """Training rows as fixed teacher views: epoch e gives row i's view (e + i) mod K, prepared by the student's
    own input transform, and the flat index k * N + i of its soft targets in ``logits.reshape(-1, 2)``.

    The training loop's call to ``set_epoch`` picks the views, so loader workers must not be persistent."""

    def __init__(self, images: list[np.ndarray], rows: Dataset, config: DetectorConfig) -> None:
        if any(len(v) != len(rows) for v in images):
            raise ValueError(f"views hold {[len(v) for v in images]} images for {len(rows)} rows")
        to_input = build_input_transform(config)
        self.views = [TorchImageDataset(rows, to_input, view) for view in images]
        self.labels = self.views[0].labels
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.views[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        k = (self.epoch + i) % len(self.views)
        x, label, _ = self.views[k][i]
        return x, label, k * len(self) + i


def main(argv: list[str] | None = None) -> None:
    """Build a view bank ahead of training (``train.train --teacher-views`` builds missing views itself)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--student", required=True, help="registered student architecture (sets the stored size)")
    p.add_argument("--data", required=True)
    p.add_argument("--views", type=int, required=True)
    p.add_argument("--out", required=True, help="folder of the bank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra-train", help="the parquet split train.train --extra-train appends (the bank covers both)")
    p.add_argument("--extra-repeat", type=int, default=1)
    p.add_argument("--degrade", type=float, default=0.0, help="strength of the degradations on the student's pixels")
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    rows = with_extra(load_split(args.data, "train"), args.extra_train, args.extra_repeat)
    view_bank(args.teacher, default_config(args.student), rows, args.views, Path(args.out), args.seed,
              degrade=args.degrade)


if __name__ == "__main__":
    main()
