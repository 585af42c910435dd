"""Which models run by default: the embedded release folders, or Hub repos named in the environment.

``DEEPFAKE_TEACHER`` / ``DEEPFAKE_STUDENT`` take a folder or ``org/name@revision``; ``DEEPFAKE_MODELS``
adds ``name=spec,name=spec``. The CLI and the app both read them here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from deepfake_space.errors import ModelLoadError

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
EMBEDDED = {"teacher": "teacher", "student": "student-kd"}


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
