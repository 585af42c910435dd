"""What is particular to running on a Hugging Face Space: ZeroGPU, where to listen, how many CPUs to use.

Nothing here touches the network or loads a model at import time. ``spaces`` is imported here, when
installed, because ZeroGPU wants it imported before torch initialises CUDA; off ZeroGPU it does nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, TypeVar

try:
    import spaces
except ImportError:  # not on a Space and not installed: the decorator is a no-op
    spaces = None


logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable)

DEFAULT_PORT = 7860
DEFAULT_CONCURRENCY = 2  # analyses at once, each with its share of the CPUs (configure_torch_threads)
GPU_DURATION_S = 60


def on_space() -> bool:
    """True inside a Hugging Face Space (the platform sets ``SPACE_ID``)."""
    return bool(os.environ.get("SPACE_ID"))


def on_zero_gpu() -> bool:
    """True on ZeroGPU hardware, where CUDA work must happen inside a ``@spaces.GPU`` function."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def gpu(fn: F | None = None, *, duration: int = GPU_DURATION_S) -> F | Callable[[F], F]:
    """``spaces.GPU(duration=...)`` when the ``spaces`` package is importable, else the function unchanged.

    ``spaces.GPU`` itself does nothing off ZeroGPU hardware, so the decorated function behaves the
    same locally, in tests and on CPU or dedicated-GPU Spaces.
    """

    def wrap(f: F) -> F:
        return f if spaces is None else spaces.GPU(duration=duration)(f)

    return wrap(fn) if fn is not None else wrap


def server_name() -> str:
    """``GRADIO_SERVER_NAME``, else every interface on a Space and loopback elsewhere."""
    return os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space() else "127.0.0.1")


def server_port() -> int:
    return int(os.environ.get("GRADIO_SERVER_PORT") or DEFAULT_PORT)


def concurrency() -> int:
    """How many analyses run at once (``DEEPFAKE_CONCURRENCY``); the rest wait in Gradio's queue."""
    return max(1, int(os.environ.get("DEEPFAKE_CONCURRENCY") or DEFAULT_CONCURRENCY))


def available_cpus() -> int:
    """CPUs this process may use: the cgroup quota when there is one (containers, Spaces), else the affinity."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def configure_torch_threads(parallel: int) -> int:
    """Give each of ``parallel`` concurrent analyses its share of the CPUs as torch intra-op threads.

    An oversubscribed torch (more busy threads than cores) spins in OpenMP barriers and runs many times
    slower: on 2 busy cores one analysis took 6 s with 2 threads and 0.07 s with 1. ``DEEPFAKE_TORCH_THREADS``
    or ``OMP_NUM_THREADS`` override the share.
    """
    import torch

    explicit = os.environ.get("DEEPFAKE_TORCH_THREADS") or os.environ.get("OMP_NUM_THREADS")
    threads = int(explicit) if explicit else max(1, available_cpus() // max(1, parallel))
    torch.set_num_threads(threads)
    logger.info("torch uses %d thread(s) per analysis, %d analyses at once", threads, parallel)
    return threads
