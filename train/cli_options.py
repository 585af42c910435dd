"""The options every measuring command shares (bootstrap, threads, seed, progress) and their start-up."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

import cv2
import torch


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
