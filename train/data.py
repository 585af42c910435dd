"""Every data source becomes a ``datasets.Dataset`` with ``image``, ``label`` and ``group`` columns.

``group`` is the source video (for DFDC crops: the ``original`` real video), so that a split or a
video-level metric never mixes frames of one video across sides.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable

import datasets
import numpy as np
import torch
from datasets import Dataset

from deepfake_space.transforms import pil_to_rgb

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
GROUP_COLUMNS = ("group", "original", "video")


def _standardise(ds: Dataset, group_column: str | None = None) -> Dataset:
    """Keep image/label/group; group comes from ``group_column`` if given, else falls back to the best id
    column, else one group per row."""
    missing = {"image", "label"} - set(ds.column_names)
    if missing:
        raise ValueError(f"dataset lacks columns {sorted(missing)}; it has {ds.column_names}")
    if group_column is not None and group_column not in ds.column_names:
        raise ValueError(f"no column {group_column!r} to group by; the dataset has {ds.column_names}")
    group_col = group_column or next((c for c in GROUP_COLUMNS if c in ds.column_names), None)
    if group_col is None:
        ds = ds.add_column("group", [str(i) for i in range(len(ds))])
    elif group_col != "group":
        values = [str(g) for g in ds[group_col]]
        ds = ds.remove_columns([c for c in ("group",) if c in ds.column_names]).add_column("group", values)
    ds = ds.select_columns(["image", "label", "group"])
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    return ds


def _load_imagefolder(root: Path) -> Dataset:
    """``root/real/*.jpg`` and ``root/fake/*.jpg``; the group is the file stem up to the first '_'."""
    rows: dict[str, list] = {"image": [], "label": [], "group": []}
    for label, name in enumerate(("real", "fake")):
        for f in sorted((root / name).rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                rows["image"].append(str(f))
                rows["label"].append(label)
                rows["group"].append(f.stem.split("_")[0])
    if not rows["image"]:
        raise ValueError(f"{root} has no images under real/ or fake/")
    return Dataset.from_dict(rows).cast_column("image", datasets.Image())


def load_split(path: str | Path, split: str = "train", group_column: str | None = None) -> Dataset:
    """Load ``split`` from an HF-datasets folder, a parquet file or folder, or a real/ fake/ imagefolder.

    ``group_column`` names the column that becomes ``group`` (default: group, original, video, else one
    group per row)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        ds = datasets.load_dataset("parquet", data_files={split: str(path)}, split=split)
    elif path.is_dir() and (path / "real").is_dir() and (path / "fake").is_dir():
        ds = _load_imagefolder(path)
    elif path.is_dir():
        ds = datasets.load_dataset(str(path), split=split)
    else:
        raise FileNotFoundError(f"no dataset at {path}")
    logger.info("loaded %s split of %s: %d rows", split, path, len(ds))
    return _standardise(ds, group_column)


def photo_halves(folder: Path) -> tuple[list[Path], list[Path]]:
    """(transfer, unseen): the photos of ``folder`` in sorted name order, alternately. Students distil on the
    first half (``train.transfer_set``); false accusations are also reported on the second, seen by no model."""
    photos = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return photos[0::2], photos[1::2]


def subset(ds: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A seeded random subset of ``n`` rows (all rows when ``n`` is None or too large)."""
    if n is None or n >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(n))


def real_rows(rows: Dataset) -> Dataset:
    """The rows labelled real (0): a self-blended run's only fakes are then its blends (``--real-only``)."""
    return fewer_fakes(rows, 0)


def fewer_fakes(rows: Dataset, n: int, seed: int = 0) -> Dataset:
    """Every real row and a seeded ``n`` of the fake rows, in their order (``--fake-subset``): with ``--sbi`` the
    self-blends then weigh more among the fakes without losing a real, each of which is a blend's source."""
    labels = np.asarray(rows["label"])
    fakes = np.flatnonzero(labels == 1)
    kept = np.random.default_rng(seed).permutation(fakes)[:n]
    return rows.select(np.sort(np.concatenate([np.flatnonzero(labels == 0), kept])))


def with_extra(rows: Dataset, extra_train: str | Path | None, repeat: int = 1) -> Dataset:
    """``rows`` followed by ``repeat`` copies of the train split of ``extra_train`` (``--extra-train``: rows from
    outside DFDC), if any. 150 photo faces are 0.5 % of DFDC's train split; repeated, each copy is augmented
    (and, in a view bank, scored) on its own, so they weigh more without being the same pixels."""
    if not extra_train:
        return rows
    return datasets.concatenate_datasets([rows, *[load_split(extra_train, "train")] * repeat])


def content_fingerprint(rows: Dataset) -> str:
    """A hash of the rows' encoded images and labels, in order.

    Caches derived from a split (decoded arrays, teacher logits) are keyed by this rather than by
    ``Dataset._fingerprint``, which changes whenever the parquet files are copied or re-materialised (new
    paths, new mtimes) although not a byte of the data did."""
    raw = rows.cast_column("image", datasets.Image(decode=False)).with_format("arrow")
    digest = hashlib.blake2b(digest_size=8)
    for batch in raw.iter(batch_size=2048):
        for image in batch["image"].to_pylist():
            digest.update(image["bytes"] or Path(image["path"]).read_bytes())
        digest.update(np.asarray(batch["label"].to_numpy(), dtype=np.int64).tobytes())
    return digest.hexdigest()


class TorchImageDataset(torch.utils.data.Dataset):
    """Applies a transform to each image; returns (tensor, label, index) so cached teacher logits
    can be looked up by row.

    With ``decoded`` (an (N, H, W, 3) uint8 array from ``train.decoded``) images come from that array
    instead of being decoded from ``ds`` on every epoch."""

    def __init__(self, ds: Dataset, transform: Callable, decoded: np.ndarray | None = None) -> None:
        if decoded is not None and len(decoded) != len(ds):
            raise ValueError(f"decoded array has {len(decoded)} images for {len(ds)} rows")
        self.ds = ds
        self.transform = transform
        self.decoded = decoded
        self.labels = [int(v) for v in ds["label"]]

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        if self.decoded is None:
            image = pil_to_rgb(self.ds[i]["image"])
        else:
            image = torch.from_numpy(np.array(self.decoded[i])).permute(2, 0, 1)
        return self.transform(image), self.labels[i], i
