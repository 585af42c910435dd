"""Command line: ``predict`` (a table per file), ``batch`` (a resumable CSV), ``bench`` (latency figures).

    python -m deepfake_space predict face.jpg clip.mp4
    python -m deepfake_space batch uploads/ --out results.csv
    python -m deepfake_space bench
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path
from typing import Iterable

import torch
from tqdm.auto import tqdm

from deepfake_space.detector import Detector
from deepfake_space.errors import DeepfakeSpaceError
from deepfake_space.media import DEFAULT_NUM_FRAMES
from deepfake_space.report import STATUS_ERROR, Report
from deepfake_space.defaults import model_specs

logger = logging.getLogger(__name__)

MEDIA_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                  ".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v", ".mpg", ".mpeg"}


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
    rows = [("model", "verdict", "P(fake)", "threshold", "params", "size MB", "preproc ms", "forward ms")]
    for m in report.models:
        rows.append((m.name, m.verdict, "-" if m.p_fake is None else f"{m.p_fake:.3f}", f"{m.threshold:.2f}",
                     f"{m.params / 1e6:.3f}M", f"{m.file_size_mb:.2f}", f"{m.latency_ms.get('preprocess', 0):.1f}",
                     f"{m.latency_ms.get('forward', 0):.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _make_detector(args: argparse.Namespace) -> Detector:
    return Detector(model_specs(args.model), device=args.device, num_frames=args.frames, tta=args.tta)


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


def list_inputs(source: Path) -> list[Path]:
    """A folder (media files, recursively) or a CSV with a ``path`` (or ``filename``) column."""
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if source.is_file() and source.suffix.lower() == ".csv":
        with source.open(newline="") as f:
            reader = csv.DictReader(f)
            column = next((c for c in ("path", "filename", "file") if c in (reader.fieldnames or [])), None)
            if column is None:
                raise DeepfakeSpaceError(f"{source} needs a 'path' or 'filename' column")
            return [(source.parent / row[column]).resolve() if not Path(row[column]).is_absolute()
                    else Path(row[column]) for row in reader]
    raise DeepfakeSpaceError(f"{source} is neither a folder nor a .csv file")


def batch_row(path: Path, report: Report, model_names: Iterable[str]) -> dict[str, str]:
    row = {"filename": str(path), "status": report.status, "faces_found": str(report.faces_found),
           "detector": ",".join(report.detectors_used), "message": report.message}
    for name in model_names:
        m = next((m for m in report.models if m.name == name), None)
        row[f"{name}_p_fake"] = "" if m is None or m.p_fake is None else f"{m.p_fake:.5f}"
        row[f"{name}_verdict"] = "" if m is None or report.status == STATUS_ERROR else m.verdict
    return row


def cmd_batch(args: argparse.Namespace) -> int:
    inputs = list_inputs(Path(args.source))
    out = Path(args.out)
    done: set[str] = set()
    if out.exists():
        with out.open(newline="") as f:
            done = {row["filename"] for row in csv.DictReader(f)}
    todo = [p for p in inputs if str(p) not in done]
    logger.info("%d inputs, %d already in %s, %d to do", len(inputs), len(done), out, len(todo))
    with _make_detector(args) as detector:
        names = [m.name for m in detector.models]
        fields = list(batch_row(Path(), Report(file=""), names))
        with out.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if not done:
                writer.writeheader()
            for path in tqdm(todo, desc="batch"):
                try:
                    report = detector.analyze(path, whole_image=args.whole_image).report
                except Exception as e:  # one bad file never stops the run; it is recorded, never guessed
                    logger.exception("unexpected failure on %s", path)
                    report = Report(file=path.name, status=STATUS_ERROR, message=f"unexpected error: {e}")
                writer.writerow(batch_row(path, report, names))
                f.flush()
    print(f"wrote {len(todo)} row(s) to {out} ({len(done)} already there)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from deepfake_space.bench import run_bench

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
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped face")
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
    ba.set_defaults(func=cmd_batch)
    be = sub.add_parser("bench", help="per-stage latency on a synthesized video and image")
    be.add_argument("--seconds", type=float, default=10.0)
    be.add_argument("--height", type=int, default=720)
    be.add_argument("--repeats", type=int, default=3)
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
