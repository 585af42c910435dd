"""Decode a split's images once into a uint8 array, so a small student's epochs are not bound by JPEG decoding.

On two CPU cores a 0.1M-parameter ResNet8 trains faster than one core can decode and resize the 224 px
DFDC crops. Each image is stored with its shorter side resized to ``size`` and centre-cropped square. At the
evaluation transform's resize size (``transforms.resize_size``) evaluation then only centre-crops, identical to
the plain pipeline; training rows are stored a little larger, so random crops are not upsampled. The array is a
``.npy`` file opened as a memory map, so several runs share one copy in the page cache; a JSON sidecar records
which rows and size it holds, so a stale cache is refused. The array is renamed into place last, so an
interrupted decode is redone rather than read.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from datasets import Dataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from deepfake_space.transforms import pil_to_rgb
from train.data import content_fingerprint

logger = logging.getLogger(__name__)


def _identity(rows: Dataset, size: int, interpolation: str) -> dict:
    return {"rows": content_fingerprint(rows), "n": len(rows), "size": size, "interpolation": interpolation}


def decoded_images(rows: Dataset, size: int, interpolation: str, cache_dir: Path) -> np.ndarray:
    """A read-only (len(rows), size, size, 3) uint8 array of ``rows``' images, decoded now or read from
    ``cache_dir``."""
    identity = _identity(rows, size, interpolation)
    path = Path(cache_dir) / f"{identity['rows']}-{size}.npy"
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        stored = json.loads(sidecar.read_text())
        if stored != identity:
            raise ValueError(f"{path} holds other images ({stored}, expected {identity}); delete it")
        logger.info("using decoded images from %s", path)
        return np.load(path, mmap_mode="r")
    square = v2.Compose([v2.Resize(size, interpolation=v2.InterpolationMode(interpolation), antialias=True),
                         v2.CenterCrop(size), v2.PILToTensor()])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial.npy")  # runs started together each write their own
    array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(rows), size, size, 3))
    for i, row in enumerate(tqdm(rows, desc=f"decode {size}px", total=len(rows))):
        array[i] = square(pil_to_rgb(row["image"])).permute(1, 2, 0).numpy()
    array.flush()
    del array
    sidecar.write_text(json.dumps(identity))
    partial.rename(path)
    logger.info("decoded %d images to %s", len(rows), path)
    return np.load(path, mmap_mode="r")
