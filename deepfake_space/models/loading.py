"""Resolve a model spec (a local folder or ``org/name@revision`` on the Hub) and load it.

Hub repos are pulled through the Hub cache with ``snapshot_download``; ``HF_ENDPOINT`` and
``HF_TOKEN`` are honoured by huggingface_hub itself. A missing folder or repo is a clear
``ModelLoadError``, never a silent fallback to some other model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from deepfake_space.errors import ModelLoadError

logger = logging.getLogger(__name__)

HUB_FILES = ["config.json", "model.safetensors", "model.onnx", "model.int8.onnx", "README.md"]


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``); no ``@`` means the default branch."""
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ModelLoadError(f"{spec!r} is neither a model folder nor a Hub repo id of the form org/name[@revision]")
    return repo_id, revision or None


def resolve_model_dir(
    spec: str | Path,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A local folder holding config.json + model.safetensors for ``spec``."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or str(spec).startswith((".", "~")) or path.suffix:
        raise ModelLoadError(f"model folder {str(spec)!r} does not exist")
    repo_id, revision = parse_model_spec(str(spec))
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=HUB_FILES,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise ModelLoadError(f"could not pull {spec!r} from the Hub: {e}") from e
    logger.info("pulled %s into %s", spec, folder)
    return Path(folder)


def load_detector(spec: str | Path, device: str | torch.device = "cpu"):
    """Load a released detector from a folder or the Hub, in eval mode on ``device``."""
    from deepfake_space.models.detector import DeepfakeDetector

    folder = resolve_model_dir(spec)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} has no config.json")
    try:
        model = DeepfakeDetector.from_pretrained(str(folder))
    except (KeyError, RuntimeError, FileNotFoundError, TypeError, SafetensorError) as e:
        raise ModelLoadError(f"{spec}: {e}") from e
    return model.to(device).eval()
