"""Which engine runs a model's forwards: ONNX Runtime from the folder's exported files, or PyTorch.

On a CPU, PyTorch eager spends most of a small student's time on per-call overhead; ONNX Runtime runs the same
graph (exported and parity-checked by ``train.export_onnx``) many times faster, so ``auto`` picks it whenever
the folder has ``model.onnx``, exported from the folder's own ``model.safetensors`` (``onnx.json`` records their
SHA-256: an export left over from earlier weights is never run), and onnxruntime is installed. int8 is the
statically quantized export and is only run when asked for. Grad-CAM needs gradients and always runs on the
PyTorch model; on CUDA, fp16 PyTorch stays the path. Whatever is chosen is named in the report, so a fallback is
never silent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepfake_space.errors import ModelLoadError
from deepfake_space.models.detector import mirror_averaged

logger = logging.getLogger(__name__)

ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
ONNX_RECORD = "onnx.json"
WEIGHTS_FILE = "model.safetensors"
RUNTIMES = ("auto", "onnx", "torch")
PRECISIONS = tuple(ONNX_FILES)
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"


class OnnxModel:
    """An ONNX Runtime session over one exported network (``train.export_onnx.export_fp32``): float32 inputs in, its
    output out (a detector's (N, 2) logits; a frozen prefix's feature maps in ``train.frozen_prefix``)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Idle pool threads otherwise spin for a while after every run, taking the cores from decoding, face
        # detection and the other models' forwards on a small CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The output as the PyTorch network returns it (a detector's (N, 2) logits)."""
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])

    def predict_proba(self, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """P(fake) per input, as ``DeepfakeDetector.predict_proba`` computes it (the same flip TTA)."""
        return mirror_averaged(self, x, tta).softmax(dim=-1)[..., 1]


@dataclass
class RuntimeChoice:
    """What runs a model's forwards: ``name`` is shown in reports ("torch", "onnx fp32", "onnx int8")."""

    name: str
    onnx: OnnxModel | None
    weights: Path


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stale_export(folder: Path) -> str | None:
    """Why the folder's ONNX files may not stand for its weights (None when ``onnx.json`` records the SHA-256 of
    the very ``model.safetensors`` beside it): a release that replaced the weights without exporting them again."""
    record_path = folder / ONNX_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    recorded = record.get("weights_sha256")
    if recorded is None:
        reason = f"{folder} has no {ONNX_RECORD} naming the weights its ONNX files were exported from"
    elif recorded != sha256(folder / WEIGHTS_FILE):
        reason = f"{folder}'s ONNX files were exported from other weights than its {WEIGHTS_FILE}"
    else:
        return None
    return f"{reason}: export it again with python -m train.export_onnx"


def choose_runtime(folder: Path, runtime: str = "auto", precision: str = "fp32",
                   device: torch.device = torch.device("cpu")) -> RuntimeChoice:
    """The engine for the model in ``folder``; what was asked for and cannot run is an error, not a fallback.

    ``auto`` is ONNX Runtime on CPU when the folder has the file for ``precision`` and onnxruntime is installed,
    else PyTorch (fp32 only: PyTorch has no int8 of these models)."""
    if runtime not in RUNTIMES:
        raise ModelLoadError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    path = folder / ONNX_FILES[precision]
    cannot = (f"ONNX Runtime runs on the CPU here, not on {device.type}" if device.type != "cpu" else
              "onnxruntime is not installed (pip install -r requirements.txt)" if not onnx_available() else
              f"{folder} has no {path.name}: export it with python -m train.export_onnx" if not path.is_file() else
              stale_export(folder))
    if runtime == "auto" and cannot and path.is_file():
        logger.warning("%s runs on PyTorch: %s", folder.name, cannot)
    if runtime == "torch" or (runtime == "auto" and cannot):
        if precision != "fp32":
            raise ModelLoadError(f"{folder.name}: {precision} runs on ONNX Runtime only, and "
                                 f"{cannot or 'runtime torch was asked for'}")
        return RuntimeChoice("torch", None, folder / WEIGHTS_FILE)
    if cannot:
        raise ModelLoadError(f"runtime 'onnx': {cannot}")
    logger.info("%s runs on ONNX Runtime (%s)", folder.name, precision)
    return RuntimeChoice(f"onnx {precision}", OnnxModel(path), path)
