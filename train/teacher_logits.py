"""Cache a frozen teacher's logits on the training rows, so KD epochs on CPU don't re-run the teacher.

The teacher sees each image the way it was trained (its own config's preprocessing), once: averaging
with the horizontal flip would double a cost that is already ~13 min of 2 CPU cores for the DFDC train
split. Batches are small because large 224 px batches spend most of their time in the kernel mapping
and unmapping activation memory. The cache file is safetensors and
records which teacher and which rows it belongs to, so a stale cache is refused, not reused.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from datasets import Dataset
from safetensors import safe_open
from safetensors.torch import save_file

from deepfake_space.models import load_detector, resolve_model_dir
from deepfake_space.runtime import choose_runtime
from deepfake_space.transforms import build_eval_transform, model_layout
from train.data import TorchImageDataset, content_fingerprint
from train.predict import predict

logger = logging.getLogger(__name__)


def weights_stamp(teacher: str) -> str:
    """The teacher's weights by content (64-bit BLAKE2b of a folder's model.safetensors), so a record or cache
    still names the right teacher after ``models/teacher`` is replaced; a Hub spec stands for itself."""
    weights = Path(teacher) / "model.safetensors"
    return hashlib.blake2b(weights.read_bytes(), digest_size=8).hexdigest() if weights.exists() else teacher


def teacher_identity(teacher: str, rows: Dataset) -> dict[str, str]:
    """What the logits depend on, by content: a clone or a copy of the same teacher and data still matches."""
    return {"teacher": str(teacher), "weights": weights_stamp(teacher), "rows": content_fingerprint(rows),
            "n": str(len(rows))}


def read_logits(path: Path, identity: dict[str, str], what: str, hint: str) -> torch.Tensor | None:
    """The logits saved at ``path``, None when there are none; a file made for another ``identity`` (teacher,
    rows, ...) is refused with ``hint``, never reused."""
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        stored = f.metadata()
        if stored != identity:
            raise ValueError(f"{path} holds logits of another {what} ({stored}); {hint}")
        return f.get_tensor("logits")


@torch.no_grad()
def compute_teacher_logits(teacher_spec: str, rows: Dataset, batch_size: int = 16,
                           num_workers: int = 1) -> torch.Tensor:
    """The teacher's logits on the clean crops, through its parity-checked ONNX export when the folder has one
    (about twice as fast on a CPU; train.export_onnx), else through PyTorch."""
    teacher = load_detector(teacher_spec).to(memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(TorchImageDataset(rows, build_eval_transform(teacher.config)),
                                         batch_size=batch_size, num_workers=num_workers)
    engine = choose_runtime(resolve_model_dir(teacher_spec))
    logger.info("teacher logits through %s", engine.name)
    net = engine.onnx or teacher
    return predict(lambda x: net(model_layout(x)).float(), loader, "teacher logits")[1]


def cached_teacher_logits(teacher_spec: str, rows: Dataset, path: Path, batch_size: int = 16) -> torch.Tensor:
    """Logits of shape (len(rows), 2), read from ``path`` when it matches, computed and saved otherwise."""
    identity = teacher_identity(teacher_spec, rows)
    stored = read_logits(path, identity, "teacher or data", "delete it or pass another --teacher-logits path")
    if stored is not None:
        logger.info("using cached teacher logits from %s", path)
        return stored
    logits = compute_teacher_logits(teacher_spec, rows, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"logits": logits}, str(path), metadata=identity)
    logger.info("saved teacher logits for %d rows to %s", len(logits), path)
    return logits
