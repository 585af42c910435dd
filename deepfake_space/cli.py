"""Command line: ``predict`` (a table per file), ``batch`` (a resumable CSV), ``bench`` (latency figures).

    python -m deepfake_space predict face.jpg clip.mp4
    python -m deepfake_space batch uploads/ --out results.csv
    python -m deepfake_space bench
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch

from deepfake_space.batch import PREFETCH, Shard, list_inputs, run_batch
from deepfake_space.detector import Detector
from deepfake_space.errors import DeepfakeSpaceError
from deepfake_space.media import DEFAULT_NUM_FRAMES
from deepfake_space.model_choice import model_specs
from deepfake_space.report import STATUS_ERROR, Report
from deepfake_space.runtime import PRECISIONS, RUNTIMES

logger = logging.getLogger(__name__)

def format_report(report: Report) -> str:
    """A readable side-by-side table of one file's report."""
    lines = [f"{report.file}  [{report.kind or '?'}]  status: {report.status}"]
    if report.message:
        lines.append(f"  {report.message}")
    if report.status == STATUS_ERROR:
        return "\n".join(lines)
    lines.append(f"  faces: {report.faces_found} in {len(report.frames)} frame(s), detector: "
                 f"{', '.join(report.detectors_used) or 'none'}; decode {report.latency_ms.get('decode', 0):.0f} ms, "
                 f"detect {report.latency_ms.get('detect', 0):.0f} ms")
    rows = [("model", "verdict", "P(fake)", "real < / fake >", "params", "size MB", "runtime", "preproc ms",
             "forward ms")]
    for m in report.models:
        real_cut, fake_cut = m.cuts
        rows.append((m.name, m.verdict, "-" if m.p_fake is None else f"{m.p_fake:.3f}",
                     f"{real_cut:.2f} / {fake_cut:.2f}", f"{m.params / 1e6:.3f}M", f"{m.file_size_mb:.2f}", m.runtime,
                     f"{m.latency_ms.get('preprocess', 0):.1f}", f"{m.latency_ms.get('forward', 0):.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _make_detector(args: argparse.Namespace) -> Detector:
    specs = model_specs(args.model)
    return Detector(specs, device=args.device, num_frames=args.frames, tta=args.tta, runtime=args.runtime,
                    precision=precisions(args.precision or [], specs))


def precisions(values: list[str], specs: dict[str, str]) -> dict[str, str]:
    """``--precision`` values (``int8`` for every model, ``NAME=int8`` for one) as ``name -> precision``."""
    out = {name: "fp32" for name in specs}
    for value in values:
        name, sep, precision = value.rpartition("=")
        if precision not in PRECISIONS or (sep and name not in specs):
            raise DeepfakeSpaceError(f"--precision {value!r}: expected [NAME=]{'|'.join(PRECISIONS)} with NAME one of "
                                     f"{', '.join(specs)}")
        out.update({name: precision} if sep else dict.fromkeys(specs, precision))
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    with _make_detector(args) as detector:
        failed = False
        for path in args.files:
            report = detector.analyze(path, whole_image=args.whole_image).report
            failed |= report.status == STATUS_ERROR
            print(format_report(report), end="\n\n")
            if args.json:
                Path(args.json).mkdir(parents=True, exist_ok=True)
                (Path(args.json) / f"{Path(path).name}.json").write_text(report.to_json())
    return 1 if failed else 0


def cmd_batch(args: argparse.Namespace) -> int:
    from deepfake_space.space import available_cpus

    shard, barrier = Shard.from_launcher()
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", shard.count))
    if shard.count > 1 and args.threads is None:  # the processes share the machine's cores
        torch.set_num_threads(max(1, available_cpus() // local_ranks))
    if shard.count > 1 and args.device != "cpu" and torch.cuda.is_available():  # one GPU per local rank
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    out = Path(args.out)
    with _make_detector(args) as detector:
        result = run_batch(detector, list_inputs(Path(args.source)), out, args.whole_image,
                           prefetch=args.prefetch, shard=shard, barrier=barrier)
    print(f"shard {shard.index} of {shard.count}: wrote {result.written} row(s) in {result.seconds:.1f} s "
          f"({result.files_per_s:.2f} files/s; {result.skipped} already in {out})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from deepfake_space.bench import run_batch_bench, run_bench

    if args.batch:
        print(run_batch_bench(model_specs(args.model), device=args.device))
        return 0
    print(run_bench(model_specs(args.model), device=args.device, seconds=args.seconds, height=args.height,
                    frames=args.frames, repeats=args.repeats))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepfake-space", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", metavar="NAME=SPEC",
                   help="a model to run (folder or org/name@rev); repeat for several. Default: the embedded "
                        "teacher and student-kd, or DEEPFAKE_TEACHER / DEEPFAKE_STUDENT")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--frames", type=int, default=DEFAULT_NUM_FRAMES, help="frames sampled per video")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction,
                   help="average each face with its mirror image, or not (default: as each model's config says)")
    p.add_argument("--runtime", default="auto", choices=RUNTIMES,
                   help="what runs the forwards: ONNX Runtime where the model folder has model.onnx (auto, on CPU), "
                        "or PyTorch. Grad-CAM always runs on PyTorch")
    p.add_argument("--precision", action="append", metavar="[NAME=]fp32|int8",
                   help="int8: the quantized ONNX file (model.int8.onnx), on ONNX Runtime; for every model, or for the "
                        "one named (repeatable, e.g. --precision student=int8)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: one per core). Use 1 when "
                                               "other work shares the cores: oversubscribed threads stall")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="a readable table per file")
    pr.add_argument("files", nargs="+")
    pr.add_argument("--whole-image", action="store_true", help="inputs are already face crops: skip detection")
    pr.add_argument("--json", metavar="DIR", help="also write each report as JSON into DIR")
    pr.set_defaults(func=cmd_predict)
    ba = sub.add_parser("batch", help="one CSV row per input; resumable")
    ba.add_argument("source", help="a folder of media or a CSV with a path column")
    ba.add_argument("--out", required=True)
    ba.add_argument("--whole-image", action="store_true")
    ba.add_argument("--prefetch", type=int, default=PREFETCH,
                    help="files decoded and face-detected ahead while the models score (0: one after another)")
    ba.set_defaults(func=cmd_batch)
    be = sub.add_parser("bench", help="per-stage latency on a synthesized video and image")
    be.add_argument("--seconds", type=float, default=10.0)
    be.add_argument("--height", type=int, default=720)
    be.add_argument("--repeats", type=int, default=3)
    be.add_argument("--batch", action="store_true", help="instead: files/s of batch on a synthesized folder of 200 "
                                                          "photos and 20 videos, before and after the pipeline")
    be.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.threads is not None:
        if args.threads < 1:
            print(f"error: --threads must be at least 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except DeepfakeSpaceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
