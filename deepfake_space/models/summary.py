"""Parameters and multiply-accumulates of every registered architecture, side by side.

    python -m deepfake_space.models.summary

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2) on one input at
the architecture's default size: one image, or one clip of ``num_frames`` frames for a temporal
model. Ratios are relative to EfficientNet-Lite0, the teacher. Networks are built on the ``meta``
device where they allow it, so even the 86M-parameter ViTs cost no memory or compute here; no weights
are downloaded.
"""

from __future__ import annotations

import argparse
import logging

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from deepfake_space.config import DetectorConfig
from deepfake_space.models.detector import DeepfakeDetector
from deepfake_space.models.registry import default_config, list_models

logger = logging.getLogger(__name__)

REFERENCE = "efficientnet_lite0"


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


@torch.no_grad()
def count_macs(model: nn.Module, config: DetectorConfig) -> int:
    """Multiply-accumulates of one forward pass on a batch of 1 at ``config.input_size``.

    Works on a model on any device, ``meta`` included (nothing is computed then, only counted).
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(config.input_shape(), device=device)
    was_training = model.training
    model.eval()
    try:
        # The math attention backend is made of counted matmuls; the fused CPU flash kernel is not counted.
        with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def build_for_counting(arch: str, **overrides) -> tuple[DeepfakeDetector, DetectorConfig]:
    """A detector of ``arch`` on the meta device (falls back to CPU if the meta forward fails)."""
    config = default_config(arch, **overrides)
    with torch.device("meta"):
        model = DeepfakeDetector(config)
    try:
        count_macs(model, config)
    except Exception as e:  # some kernels have no meta implementation
        logger.info("%s: meta forward failed (%s); building on CPU", arch, e)
        model = DeepfakeDetector(config)
    return model, config


def summarise(archs: list[str] | None = None) -> list[dict]:
    """One row per architecture: input, params, MACs and their ratios to EfficientNet-Lite0."""
    rows = []
    for arch in archs or list_models():
        model, config = build_for_counting(arch)
        rows.append({"arch": arch, "input": "x".join(str(s) for s in config.input_shape()[1:]),
                     "params": count_params(model), "macs": count_macs(model, config)})
        del model
    ref = next((r for r in rows if r["arch"] == REFERENCE), None)
    if ref is None:
        model, config = build_for_counting(REFERENCE)
        ref = {"params": count_params(model), "macs": count_macs(model, config)}
    for r in rows:
        r["params_vs_lite0"] = r["params"] / ref["params"]
        r["macs_vs_lite0"] = r["macs"] / ref["macs"]
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"{'architecture':<22} {'input (per sample)':<18} {'params':>10} {'MACs':>10} "
            f"{'params/lite0':>13} {'MACs/lite0':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['arch']:<22} {r['input']:<18} {r['params'] / 1e6:>9.3f}M {r['macs'] / 1e9:>9.3f}G "
                     f"{r['params_vs_lite0']:>13.3f} {r['macs_vs_lite0']:>11.3f}")
    lines.append("MACs = FLOPs / 2 (torch.utils.flop_counter), batch of 1; a temporal model counts one clip "
                 "of num_frames frames.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("archs", nargs="*", help="architectures to list (default: every registered one)")
    args = p.parse_args(argv)
    print(format_table(summarise(args.archs or None)))


if __name__ == "__main__":
    main()
