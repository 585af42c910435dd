"""Export a released detector to ONNX (fp32 and int8) next to its safetensors, checked before anything is written.

    python -m train.export_onnx --model models/student-kd --data ../shared/data/dfdc_faces

1. ``model.onnx``: ``torch.onnx.export`` (the dynamo exporter) of the network with a dynamic batch axis. Its logits
   must match PyTorch's to ``--max-logit-diff`` on ``--parity-crops`` validation crops, or nothing is written.
2. ``model.int8.onnx``: onnxruntime's static quantization (QDQ, per-channel int8 weights, uint8 activations)
   calibrated on ``--calibration-crops`` train crops. Its validation ROC-AUC must stay within ``--max-auc-drop``
   of the fp32 file's on the whole validation split; otherwise no int8 file is written and ``onnx.json`` says
   why, so a quantization that costs accuracy never ships.
3. ``onnx.json``: the SHA-256 of both files and of the weights they came from (``deepfake_space.runtime`` runs no
   export of other weights), the parity figures and this command; the card renders it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deepfake_space.cards import ONNX_FILE
from deepfake_space.errors import ModelLoadError
from deepfake_space.models import load_detector
from deepfake_space.runtime import INPUT_NAME, ONNX_FILES, OUTPUT_NAME, WEIGHTS_FILE, OnnxModel, sha256
from deepfake_space.transforms import build_eval_transform
from train.cli_options import start
from train.data import TorchImageDataset, load_split, subset
from train.evaluate import predict_scores

logger = logging.getLogger("export_onnx")


class ParityError(RuntimeError):
    """The exported fp32 graph does not compute what the PyTorch model computes."""


def export_fp32(net: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """A network taking (N, *input_shape) images (BatchNorms as trained: ONNX Runtime folds them itself), with a
    dynamic batch axis, under the names ``deepfake_space.runtime.OnnxModel`` runs."""
    example = torch.randn(2, *input_shape)
    for name in ("onnxscript", "onnx_ir"):  # their per-pass INFO lines would bury the parity figures
        logging.getLogger(name).setLevel(logging.WARNING)
    program = torch.onnx.export(net.eval(), (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True)
    program.save(str(path))


class _Calibration:
    """onnxruntime's CalibrationDataReader over a stack of preprocessed crops, a few at a time."""

    def __init__(self, crops: torch.Tensor, batch: int = 16) -> None:
        self._batches = iter(crops.split(batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._batches, None)
        return None if chunk is None else {INPUT_NAME: chunk.numpy()}


def quantize_int8(fp32: Path, int8: Path, calibration: torch.Tensor) -> None:
    """Static QDQ quantization: per-channel int8 weights, uint8 activations calibrated on ``calibration``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(str(prepared), str(int8), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)


def _crops(rows, config, n: int | None, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    ds = TorchImageDataset(subset(rows, n, seed), build_eval_transform(config))
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([x for x, _, _ in items]), np.array([y for _, y, _ in items])


def _loader(rows, config) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(TorchImageDataset(rows, build_eval_transform(config)), batch_size=64)


def export(folder: Path, data: str, parity_crops: int = 256, calibration_crops: int = 256,
           max_logit_diff: float = 1e-4, max_auc_drop: float = 0.005, seed: int = 0, val_limit: int | None = None,
           command: str | None = None) -> dict:
    """Write ``model.onnx``, ``model.int8.onnx`` (if it passes) and ``onnx.json`` into ``folder``; return the record.
    ``val_limit``: compare the int8 AUC on a seeded subset of the validation split instead of all of it."""
    model = load_detector(folder)
    config = model.config
    val_rows = subset(load_split(data, "validation"), val_limit, seed)
    record: dict = {"command": command or f"python -m train.export_onnx --model {folder} --data {data}",
                    "torch": torch.__version__, "weights_sha256": sha256(folder / WEIGHTS_FILE)}
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        staged = {p: Path(tmp) / name for p, name in ONNX_FILES.items()}
        export_fp32(model.net, model.config.input_shape()[1:], staged["fp32"])
        x, _ = _crops(val_rows, config, parity_crops, seed)
        with torch.inference_mode():
            reference = model.net(x).numpy()
        fp32 = OnnxModel(staged["fp32"])
        diff = float(np.abs(fp32(x).numpy() - reference).max())
        record["fp32"] = {"max_abs_logit_diff": diff, "parity_crops": len(x), "max_allowed": max_logit_diff}
        if not diff <= max_logit_diff:
            raise ParityError(f"{folder.name}: ONNX fp32 logits differ from PyTorch's by {diff:.2e} "
                              f"(> {max_logit_diff:.0e}) on {len(x)} validation crops; nothing written")
        logger.info("fp32 parity: max |logit diff| %.2e on %d crops", diff, len(x))

        calibration, _ = _crops(load_split(data, "train"), config, calibration_crops, seed)
        quantize_int8(staged["fp32"], staged["int8"], calibration)
        y, p_fp32 = predict_scores(fp32, _loader(val_rows, config), tta=config.tta)
        _, p_int8 = predict_scores(OnnxModel(staged["int8"]), _loader(val_rows, config), tta=config.tta)
        auc_fp32, auc_int8 = float(roc_auc_score(y, p_fp32)), float(roc_auc_score(y, p_int8))
        passed = auc_fp32 - auc_int8 <= max_auc_drop
        record["int8"] = {"method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations",
                          "calibration_crops": len(calibration), "validation_n": int(len(y)),
                          "val_auc_fp32": round(auc_fp32, 5), "val_auc_int8": round(auc_int8, 5),
                          "max_allowed_drop": max_auc_drop, "released": passed,
                          "max_abs_p_fake_diff": round(float(np.abs(p_int8 - p_fp32).max()), 5),
                          "same_verdict_share": round(float(np.mean((p_int8 >= config.threshold)
                                                                    == (p_fp32 >= config.threshold))), 5)}
        logger.info("int8: validation AUC %.4f against fp32 %.4f (%s)", auc_int8, auc_fp32,
                    "released" if passed else "not released: it costs more than the allowed drop")
        for precision, path in staged.items():
            target = folder / path.name
            if precision == "int8" and not passed:
                target.unlink(missing_ok=True)
                continue
            path.replace(target)
            record[precision] |= {"file": target.name, "sha256": sha256(target),
                                  "size_mb": round(target.stat().st_size / 2**20, 3)}
    (folder / ONNX_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="a released model folder")
    p.add_argument("--data", default="../shared/data/dfdc_faces", help="the DFDC face crops (train and validation)")
    p.add_argument("--parity-crops", type=int, default=256, help="validation crops for the fp32 logit check")
    p.add_argument("--calibration-crops", type=int, default=256, help="train crops that calibrate the int8 ranges")
    p.add_argument("--max-logit-diff", type=float, default=1e-4)
    p.add_argument("--max-auc-drop", type=float, default=0.005, help="int8 validation AUC below fp32's, at most")
    p.add_argument("--val-limit", type=int, help="a seeded subset of this many validation crops (default: all)")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv, args = start(argv, parse_args)
    try:
        record = export(args.model, args.data, args.parity_crops, args.calibration_crops, args.max_logit_diff,
                        args.max_auc_drop, args.seed, args.val_limit,
                        command="python -m train.export_onnx " + shlex.join(argv))
    except (ParityError, ModelLoadError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
