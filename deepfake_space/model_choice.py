"""Which models run: the embedded release folders, or Hub repos named in the environment, for the CLI and the app.

``DEEPFAKE_TEACHER`` / ``DEEPFAKE_STUDENT`` take a folder or ``org/name@revision``; ``DEEPFAKE_MODELS``
adds ``name=spec,name=spec``; ``DEEPFAKE_MODELS_DIR`` moves the embedded folders. The app adds the control, the
other distillation variant and the student's int8 file when they are there (``app_model_specs``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from deepfake_space.errors import ModelLoadError
from deepfake_space.runtime import ONNX_FILES, onnx_available

logger = logging.getLogger(__name__)

# The released folders: the checkout's models/ unless DEEPFAKE_MODELS_DIR names another (an installed package).
MODELS_DIR = Path(os.environ.get("DEEPFAKE_MODELS_DIR") or Path(__file__).resolve().parents[1] / "models")
EMBEDDED = {"teacher": "teacher", "student": "student-kd"}
# The two-teacher average, the control, the other distillation variant and the tiny student, offered in the dropdowns
# when they are there.
OPTIONAL_MODELS = {"teacher-pair": "teacher-pair", "student-scratch": "student-scratch",
                   "student-kd-mse": "student-kd-mse", "student-tiny": "student-tiny"}
# The student's quantized ONNX file, offered as one more model when it is there and can run (CPU only).
INT8_SUFFIX = " (int8)"


def _parse_pairs(items: list[str]) -> dict[str, str]:
    specs = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise ModelLoadError(f"expected NAME=SPEC, got {item!r}")
        specs[name.strip()] = spec.strip()
    return specs


def model_specs(pairs: list[str] | None = None) -> dict[str, str]:
    """``name -> spec`` for the models to run: explicit pairs win, then the environment, then embedded."""
    if pairs:
        return _parse_pairs(pairs)
    specs = {}
    for name, folder in EMBEDDED.items():
        spec = os.environ.get(f"DEEPFAKE_{name.upper()}")
        if spec:
            specs[name] = spec
        elif (MODELS_DIR / folder / "config.json").is_file():
            specs[name] = str(MODELS_DIR / folder)
        else:  # an embedded model not released yet: run the others and say so
            logger.warning("embedded model %s is not in %s yet; running without it", folder, MODELS_DIR)
    extra = os.environ.get("DEEPFAKE_MODELS", "")
    specs.update(_parse_pairs([p for p in extra.split(",") if p.strip()]))
    if not specs:
        raise ModelLoadError(f"no model to run: {MODELS_DIR} holds no released model and neither "
                             f"DEEPFAKE_TEACHER nor DEEPFAKE_STUDENT is set (see `make models`)")
    return specs


def app_model_specs() -> dict[str, str]:
    """``name -> spec`` for the app: the CLI's set (env ``DEEPFAKE_TEACHER`` / ``DEEPFAKE_STUDENT`` /
    ``DEEPFAKE_MODELS`` or the embedded teacher and student-kd) plus, when ``DEEPFAKE_MODELS`` is unset (set it,
    even empty, to opt out), the embedded ``student-scratch`` baseline and ``student-kd-mse`` variant when their
    folders exist and the student's int8 ONNX file as ``student (int8)`` on a machine without CUDA."""
    specs = model_specs()
    if "DEEPFAKE_MODELS" not in os.environ:
        student = specs.get("student")
        if student and Path(student).is_dir() and (Path(student) / ONNX_FILES["int8"]).is_file() \
                and onnx_available() and not _has_cuda():
            specs[f"student{INT8_SUFFIX}"] = student
        for name, folder in OPTIONAL_MODELS.items():
            if name not in specs and (MODELS_DIR / folder / "config.json").is_file():
                specs[name] = str(MODELS_DIR / folder)
    return specs


def model_precisions(specs: dict[str, str]) -> dict[str, str]:
    """The precision each of ``app_model_specs`` runs at: int8 for the names it gave the int8 suffix."""
    return {name: "int8" if name.endswith(INT8_SUFFIX) else "fp32" for name in specs}


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
