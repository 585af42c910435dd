"""Pack a GPU run's training data into parts that each fit one call of the device machine.

    python -m train.device_pack --data ../shared/data/dfdc_faces --extra-train cache/transfer_photos \
        --fakes 8000 --out pack --part-mb 30

A whole-network self-blended teacher is hours per epoch on this machine's two cores and minutes on a GPU, but a
GPU call carries at most 64 MiB with the repository in it (about 33 MiB of that is ``models/``), and the DFDC crops
are 170 MB. So the run's rows are written as HF-datasets parquet shards, split over ``OUT/part-K`` folders of at
most ``--part-mb`` each; copied over each other on the device they form one folder that ``train.train`` reads:

- ``dfdc/data/train-*.parquet``: every real train row and ``--fakes`` seeded fakes, each crop re-encoded at the size
  it had in its video (``width``; the 224 px crops upscale most of them) with the source's JPEG quality: 31 % fewer
  bytes;
- ``dfdc/data/validation-*.parquet``: the validation split as it is (``--val N``: a seeded subset), which picks
  the run's epoch and threshold as on this machine;
- ``photos/``: the ``--extra-train`` parquet split (``train.transfer_set --no-blends``), re-encoded as JPEG;
- ``landmarks/``: dlib's landmarks of the packed reals, photo faces included (``train.sbi.cached_landmarks``, keyed
  by content), so the device, which has no dlib, never computes one.

``OUT/manifest.json`` lists each part's files and bytes. docs/gpu_training.md gives the device calls.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from train.data import content_fingerprint, load_split, subset
from train.sbi import cached_landmarks, row_keys

logger = logging.getLogger("device_pack")

SOURCE_QUALITY = 75  # the DFDC crops' JPEG quantisation tables are libjpeg's quality 75
EXTRA_QUALITY = 90  # the photo faces are PNG (80 kB each): as a good camera JPEG, a fifth of that
CROP_SIZE = 224
FEATURES = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"]),
                              "group": datasets.Value("string")})


def jpeg(image: bytes, quality: int, side: int | None = None) -> bytes:
    """An encoded image re-encoded as a JPEG of ``quality``, first shrunk to ``side`` x ``side`` if it is larger."""
    img = Image.open(io.BytesIO(image)).convert("RGB")
    if side is not None and side < img.width:
        img = img.resize((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def train_rows(data: Path, fakes: int, seed: int) -> datasets.Dataset:
    """Every real row of the train split and ``fakes`` seeded fake rows, with the raw columns kept (width)."""
    raw = datasets.load_dataset(str(data), split="train").cast_column("image", datasets.Image(decode=False))
    labels = np.asarray(raw["label"])
    real, fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    chosen = np.random.default_rng(seed).permutation(fake)[:fakes]
    return raw.select(np.sort(np.concatenate([real, chosen])).tolist())


def pack_landmarks(rows: datasets.Dataset, cache: Path, folder: Path) -> tuple[Path, np.ndarray]:
    """The landmarks of ``rows``' reals (computed into ``cache`` where missing) as one file in ``folder``, in the
    layout ``train.sbi.cached_landmarks`` reads: on the device every one is found and dlib is never started."""
    points = cached_landmarks(rows, cache)
    keys = row_keys(rows)
    real = [i for i, label in enumerate(rows["label"]) if int(label) == 0]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"landmarks-{content_fingerprint(rows)}.npz"
    np.savez(path, keys=np.array([keys[i] for i in real]), points=points[real])
    return path, points


def write_shards(rows: dict[str, list], folder: Path, split: str, shard_rows: int) -> list[Path]:
    """``rows`` as parquet shards named as HF datasets names splits (``split-0000K-of-0000N.parquet``)."""
    n = len(rows["label"])
    count = max(1, -(-n // shard_rows))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        part = {c: v[k * shard_rows:(k + 1) * shard_rows] for c, v in rows.items()}
        path = folder / f"{split}-{k:05d}-of-{count:05d}.parquet"
        datasets.Dataset.from_dict(part, features=FEATURES).to_parquet(str(path))
        paths.append(path)
    return paths


def reencoded_train(raw: datasets.Dataset, quality: int) -> dict[str, list]:
    """The packed train rows: each crop at the side it had in its video, as a JPEG of ``quality``."""
    rows: dict[str, list] = {"image": [], "label": [], "group": []}
    for row in tqdm(raw, desc="re-encoding train crops", total=len(raw)):
        side = min(CROP_SIZE, int(row["width"]))
        rows["image"].append({"bytes": jpeg(row["image"]["bytes"], quality, side), "path": None})
        rows["label"].append(int(row["label"]))
        rows["group"].append(str(row["original"]))
    return rows


def _files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file())


def pack(data: Path, extra_train: Path | None, out: Path, fakes: int, val: int | None, part_mb: float,
         landmark_cache: Path, seed: int = 0, quality: int = SOURCE_QUALITY, shard_rows: int = 2000) -> dict:
    """Write the parts and the manifest; return the manifest."""
    staging = out / "all"
    for old in [staging, *out.glob("part-*")]:
        if old.exists():
            shutil.rmtree(old)
    encoded = reencoded_train(train_rows(data, fakes, seed), quality)
    files = write_shards(encoded, staging / "dfdc" / "data", "train", shard_rows)
    val_rows = subset(load_split(data, "validation"), val, seed).cast_column("image", datasets.Image(decode=False))
    files += write_shards({c: val_rows[c] for c in ("image", "label", "group")}, staging / "dfdc" / "data",
                          "validation", len(val_rows))
    rows = load_split(staging / "dfdc", "train")
    if extra_train is not None:
        extra = load_split(extra_train, "train").cast_column("image", datasets.Image(decode=False))
        photos = {"image": [{"bytes": jpeg(r["bytes"], EXTRA_QUALITY), "path": None} for r in extra["image"]],
                  "label": extra["label"], "group": extra["group"]}
        files += write_shards(photos, staging / "photos", "train", len(extra))
        # train.train blends the extra reals too: they need landmarks as well
        rows = datasets.concatenate_datasets([rows, load_split(staging / "photos", "train")])
    path, landmarks = pack_landmarks(rows, landmark_cache, staging / "landmarks")
    parts = assign_parts([*files, path], part_mb * 2**20)
    for k, members in enumerate(parts, 1):
        for f in members:
            target = out / f"part-{k}" / f.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            f.replace(target)
    shutil.rmtree(staging)
    real = encoded["label"].count(0)
    folders = [out / f"part-{k}" for k in range(1, len(parts) + 1)]
    manifest = {
        "data": str(data), "extra_train": str(extra_train) if extra_train else None, "seed": seed,
        "quality": quality, "train_rows": len(encoded["label"]), "train_real": real,
        "train_fake": len(encoded["label"]) - real, "extra_rows": len(rows) - len(encoded["label"]),
        "val_rows": len(val_rows), "reals_with_landmarks": int(np.isfinite(landmarks[:, 0, 0]).sum()),
        "parts": [{"name": d.name, "bytes": sum(f.stat().st_size for f in _files(d)),
                   "files": [str(f.relative_to(d)) for f in _files(d)]} for d in folders],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("packed %d train rows (%d real), %d extra rows (%d reals of both with landmarks) and %d validation "
                "rows into %d parts of %s MB", manifest["train_rows"], real, manifest["extra_rows"],
                manifest["reals_with_landmarks"], len(val_rows), len(parts),
                [round(p["bytes"] / 1e6, 1) for p in manifest["parts"]])
    return manifest


def assign_parts(files: list[Path], budget: float) -> list[list[Path]]:
    """First-fit decreasing: the fewest parts of at most ``budget`` bytes; a file larger than that is an error."""
    sizes = {f: f.stat().st_size for f in files}
    too_big = [f"{f.name} ({sizes[f] / 2**20:.1f} MiB)" for f in files if sizes[f] > budget]
    if too_big:
        raise ValueError(f"files larger than a part: {', '.join(too_big)}; use smaller --shard-rows")
    parts: list[list[Path]] = []
    room: list[float] = []
    for f in sorted(files, key=sizes.get, reverse=True):
        k = next((i for i, r in enumerate(room) if r >= sizes[f]), None)
        if k is None:
            parts.append([])
            room.append(budget)
            k = len(parts) - 1
        parts[k].append(f)
        room[k] -= sizes[f]
    return parts


def merge(out: Path) -> Path:
    """On the device: the parts ``out/manifest.json`` lists, copied over each other into ``out/all``. A part with a
    file missing (a call that did not arrive, or a machine that went cold between calls) is an error naming it."""
    manifest = json.loads((out / "manifest.json").read_text())
    missing = [p["name"] for p in manifest["parts"] if not all((out / p["name"] / f).is_file() for f in p["files"])]
    if missing:
        raise FileNotFoundError(f"pack parts missing on this machine (send them again): {' '.join(missing)}")
    target = out / "all"
    if target.exists():
        shutil.rmtree(target)
    for part in manifest["parts"]:
        shutil.copytree(out / part["name"], target, dirs_exist_ok=True)
    return target


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--merge", type=Path, metavar="OUT",
                   help="on the device: check and join the parts that arrived in OUT into OUT/all, nothing else")
    p.add_argument("--data", type=Path, help="the DFDC face crops (HF-datasets folder)")
    p.add_argument("--extra-train", type=Path, help="a parquet split to pack as it is (train.transfer_set)")
    p.add_argument("--out", type=Path)
    p.add_argument("--fakes", type=int, default=8000, help="seeded fake train rows to pack (every real is packed)")
    p.add_argument("--val", type=int, help="pack only this many seeded validation rows (default: all)")
    p.add_argument("--landmark-cache", type=Path, default=Path("cache/landmarks"),
                   help="where landmarks are looked up by content and computed if missing")
    p.add_argument("--part-mb", type=float, default=30.0, help="MiB per part: 64 less the repository, less room")
    p.add_argument("--shard-rows", type=int, default=2000)
    p.add_argument("--quality", type=int, default=SOURCE_QUALITY)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.merge:
        try:
            logger.info("merged the parts into %s", merge(args.merge))
        except FileNotFoundError as e:
            sys.exit(f"error: {e}")
        return
    if args.data is None or args.out is None:
        p.error("--data and --out are required to build a pack")
    pack(args.data, args.extra_train, args.out, args.fakes, args.val, args.part_mb, args.landmark_cache, args.seed,
         args.quality, args.shard_rows)


if __name__ == "__main__":
    main()
