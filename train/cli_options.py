"""The options every measuring command shares (bootstrap, threads, seed, progress), their start-up, and how a
result reaches its JSON."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

import cv2
import torch

from deepfake_space.errors import ModelLoadError


def add_measure_options(p: argparse.ArgumentParser, threads_help: str, bootstrap: bool = True) -> None:
    """``bootstrap=False`` for a command whose intervals need no resampling (Wilson's)."""
    if bootstrap:
        p.add_argument("--n-boot", dest="n_boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--threads", type=int, help=threads_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def start(argv: list[str] | None, parse: Callable[[list[str]], argparse.Namespace]) -> tuple[list[str],
                                                                                            argparse.Namespace]:
    """Logging, the parsed arguments, and torch's and OpenCV's threads as ``--threads`` asks; returns the argv too,
    for the command a result records."""
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    return argv, args


def measure_to_json(measure: Callable[[], dict], out: str | Path) -> dict:
    """Run ``measure`` and write its result to ``out``; a bad input (a missing model, no data, a wrong option
    value) ends the command with its message, never a traceback."""
    try:
        result = measure()
    except (ValueError, ModelLoadError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result
