"""Helpers for the app tests: small untrained models, and ``python app.py`` run in a subprocess on
127.0.0.1 with a free port, pointed at those models through the environment like a Space would be.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from processes import stop_process

REPO = Path(__file__).resolve().parents[1]

# name -> (architecture, input size): tiny and fast, and different so speed-up and params differ.
TEST_MODELS = {"teacher": ("mobilenetv2_035", 96), "student": ("resnet8", 64), "student-scratch": ("resnet8", 64)}


def make_models(root: Path, models: dict[str, tuple[str, int]] = TEST_MODELS) -> dict[str, str]:
    """Save untrained detectors under ``root``; returns ``name -> folder``."""
    import torch

    from deepfake_space.models import DeepfakeDetector

    torch.manual_seed(0)
    specs = {}
    for name, (arch, size) in models.items():
        model = DeepfakeDetector.create(arch, input_size=size)
        model.save_pretrained(root / name, config=model.config)
        specs[name] = str(root / name)
    return specs


def model_env(specs: dict[str, str]) -> dict[str, str]:
    """The environment that makes the app load exactly ``specs`` (teacher, student, then the rest)."""
    extra = ",".join(f"{n}={s}" for n, s in specs.items() if n not in ("teacher", "student"))
    return {"DEEPFAKE_TEACHER": specs["teacher"], "DEEPFAKE_STUDENT": specs["student"],
            # set even when empty: unset, the app would add the embedded models/student-scratch
            "DEEPFAKE_MODELS": extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def answers(self, timeout: float = 5.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/gradio_api/info", timeout=timeout) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False


@contextmanager
def serve_app(specs: dict[str, str], work: Path, env: dict[str, str | None] | None = None,
              start_timeout: float = 240.0) -> Iterator[AppServer]:
    """Run ``python app.py`` with the models in ``specs``; yields once it answers, stops it afterwards.

    Every cache (Gradio uploads, cached examples, the synthesized video, reports) goes under ``work``.
    ``env`` adds variables; a value of None removes one.
    """
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {**os.environ, **model_env(specs),
                "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(work / "gradio"),
                "GRADIO_EXAMPLES_CACHE": str(work / "cached_examples"), "DEEPFAKE_CACHE_DIR": str(work / "cache"),
                "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None and k != "SPACE_ID"}
    log = work / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=full_env,
                                   stdout=out, stderr=subprocess.STDOUT)
    server = AppServer(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + start_timeout
        while not server.answers(timeout=2):
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"app.py did not answer within {start_timeout:.0f} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        stop_process(process)
