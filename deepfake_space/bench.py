"""``deepfake-space bench``: per-stage latency of the pipeline against the seed system's naive loop.

Both are measured in the same run on the same synthesized 720p video, so the ratio is meaningful on
any machine. The naive loop is how the seed system did it: decode every frame with OpenCV, detect
faces at full resolution, one forward pass per frame per model.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from deepfake_space.batch import PREFETCH, list_inputs, run_batch
from deepfake_space.detector import Detector, LoadedModel, load_models, resolve_device
from deepfake_space.faces import FaceDetector, crop_face
from deepfake_space.models import resolve_model_dir
from deepfake_space.report import Report
from deepfake_space.runtime import ONNX_FILES, onnx_available
from deepfake_space.synth import astronaut, write_face_video
from deepfake_space.transforms import build_eval_transform, model_layout


def _median_reports(detector: Detector, path: Path, repeats: int, cams: int = 0) -> tuple[Report, float]:
    """Warm up once, then the run with the median wall time, and that time in ms."""
    detector.analyze(path, cams=cams)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        report = detector.analyze(path, cams=cams).report
        runs.append(((time.perf_counter() - start) * 1000, report))
    runs.sort(key=lambda r: r[0])
    wall, report = runs[len(runs) // 2]
    if report.status != "ok":
        raise RuntimeError(f"bench input {path.name} was not analysed: {report.status} {report.message}")
    return report, wall


@torch.no_grad()
def per_face_latency_ms(models: list[LoadedModel], device: torch.device, rounds: int = 8,
                        burst: int = 10) -> dict[str, float]:
    """Median forward time of one face (batch 1) per model, through the engine each one runs on.

    The models take turns, ``burst`` forwards each per round, so a slow spell of a shared CPU hits all of them
    alike and their ratio stays meaningful, while each model still runs with its weights in cache (as it does on a
    video's faces) rather than evicted by the model before it. The first round warms up and is not counted."""
    inputs = {}
    for m in models:
        cfg = m.model.config
        inputs[m.name] = model_layout(torch.randn(1, 3, cfg.input_size, cfg.input_size, device=device,
                                                  dtype=next(m.model.parameters()).dtype))
    times: dict[str, list[float]] = {m.name: [] for m in models}
    for round_ in range(rounds + 1):
        for m in models:
            for _ in range(burst):
                start = time.perf_counter()
                m.predict_proba(inputs[m.name])
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if round_ > 0:
                    times[m.name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports it in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.no_grad()
def naive_loop_ms(detector: Detector, path: Path) -> float:
    """The seed system's way: every frame decoded, full-resolution detection, batch-1 forwards."""
    transforms = [build_eval_transform(m.model.config) for m in detector.models]
    start = time.perf_counter()
    capture = cv2.VideoCapture(str(path))
    with FaceDetector(max_side=100_000) as faces:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            for face in faces.detect(rgb):
                for loaded, transform in zip(detector.models, transforms):
                    crop = crop_face(rgb, face.box, loaded.model.config.face_margin)
                    x = transform(Image.fromarray(crop))[None].to(detector.device)
                    loaded.model(x.to(next(loaded.model.parameters()).dtype))
    capture.release()
    return (time.perf_counter() - start) * 1000


def _stage_table(report: Report, wall_ms: float) -> list[str]:
    lines = [f"  decode {report.latency_ms['decode']:.1f} ms, face detection {report.latency_ms['detect']:.1f} ms "
             f"({', '.join(report.detectors_used)}), {report.faces_found} face(s) in {len(report.frames)} frame(s)"]
    for m in report.models:
        stages = ", ".join(f"{k} {v:.1f} ms" for k, v in m.latency_ms.items())
        lines.append(f"  {m.name:<10} {stages}; verdict {m.verdict} (P(fake) {m.p_fake:.3f})")
    lines.append(f"  wall time to all verdicts: {wall_ms:.0f} ms")
    return lines


def _runtimes(specs: dict[str, str], device: torch.device) -> list[tuple[str, str, str]]:
    """(label, runtime, precision) of every engine all of ``specs`` can run on here: PyTorch always, ONNX Runtime
    fp32 and int8 on CPU where every folder has the file."""
    engines = [("torch", "torch", "fp32")]
    if device.type == "cpu" and onnx_available():
        for precision, name in ONNX_FILES.items():
            if all((resolve_model_dir(spec) / name).is_file() for spec in specs.values()):
                engines.append((f"onnx {precision}", "onnx", precision))
    return engines


def _ratio(mine: float, theirs: float, less: str, more: str) -> str:
    """``theirs / mine`` as "N.Nx LESS", or "N.Nx MORE" when ``mine`` is the larger (a model bigger than the
    teacher, such as an ensemble of it)."""
    return f"{theirs / mine:.1f}x {less}" if mine <= theirs else f"{mine / theirs:.1f}x {more}"


def _speedups(per_face: dict[str, float], models: list[LoadedModel]) -> list[str]:
    """Each model against the first (the teacher) on the same engine."""
    teacher, lines = models[0], []
    for m in models[1:]:
        lines.append(f"    {m.name} vs {teacher.name}: "
                     f"{_ratio(per_face[m.name], per_face[teacher.name], 'faster', 'slower')} per face, "
                     f"{_ratio(m.params, teacher.params, 'fewer', 'more')} params")
    return lines


def run_bench(specs: dict[str, str], device: str = "auto", seconds: float = 10.0, height: int = 720,
              frames: int = 16, repeats: int = 3) -> str:
    """Measure and return the figures as text (the first model is taken as the teacher), for every engine."""
    torch_device = resolve_device(device)
    engines = _runtimes(specs, torch_device)
    lines = [f"device: {torch_device}, torch threads: {torch.get_num_threads()}, engines: "
             f"{', '.join(label for label, _, _ in engines)}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        video = write_face_video(Path(tmp) / "bench.mp4", seconds=seconds, height=height)
        image = Path(tmp) / "bench.png"
        Image.fromarray(astronaut()).save(image)
        loaded = {label: load_models(specs, torch_device, runtime, precision) for label, runtime, precision in engines}
        # every engine's models in one interleaved measurement, so their ratios share the machine's state
        everyone = [replace(m, name=f"{m.name} [{label}]") for label, ms in loaded.items() for m in ms]
        per_face = per_face_latency_ms(everyone, torch_device)
        lines.append("per face, batch 1 (median; models and engines take turns, 10 forwards each):")
        for label, models in loaded.items():
            times = {m.name: per_face[f"{m.name} [{label}]"] for m in models}
            lines.append(f"  {label}:")
            for m in models:
                lines.append(f"    {m.name:<16} {m.model.config.arch:<20} {m.params / 1e6:8.3f}M params "
                             f"{m.file_size_mb:8.2f} MB  {times[m.name]:7.2f} ms")
            lines += _speedups(times, models)
        video_walls: dict[str, float] = {}
        for label, models in loaded.items():
            with Detector(models, device=device, num_frames=frames) as detector:
                report, wall = _median_reports(detector, image, repeats)
                lines += ["", f"[{label}] image 512x512 -> all verdicts (median of {repeats}):",
                          *_stage_table(report, wall)]
                report, wall = _median_reports(detector, image, repeats, cams=1)
                lines += [f"[{label}] the same with one Grad-CAM per model: {wall:.0f} ms"]
                report, wall = _median_reports(detector, video, repeats)
                video_walls[label] = wall
                lines += [f"[{label}] video {seconds:.0f} s {height}p, {frames} frames sampled -> all verdicts "
                          f"(median of {repeats}):", *_stage_table(report, wall)]
        with Detector(loaded["torch"], device=device, num_frames=frames) as detector:
            naive = naive_loop_ms(detector, video)
        total_frames = int(seconds * 30)
        lines += ["", f"naive loop (OpenCV decodes all {total_frames} frames, full-resolution detection, batch-1 "
                      f"PyTorch forwards): {naive:.0f} ms", "pipeline speed-up over the naive loop: " + ", ".join(
                          f"{label} {naive / wall:.1f}x" for label, wall in video_walls.items()),
                  f"peak RSS of this process: {peak_rss_mb():.0f} MB"]
        return "\n".join(lines)


def _batch_folder(folder: Path, photos: int, videos: int, seed: int = 0) -> None:
    """``photos`` JPEGs of the astronaut, each shifted, scaled and flipped at random, and ``videos`` 2 s 360p clips."""
    rng = np.random.default_rng(seed)
    face = Image.fromarray(astronaut())
    for i in range(photos):
        side = int(rng.integers(320, 512))
        x, y = (int(v) for v in rng.integers(0, 512 - side + 1, size=2))
        image = face.crop((x, y, x + side, y + side)).resize((480, 480))
        (image.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image).save(folder / f"photo_{i:03d}.jpg",
                                                                                      quality=90)
    for i in range(videos):
        write_face_video(folder / f"clip_{i:02d}.mp4", seconds=2, height=360, fps=15)


def run_batch_bench(specs: dict[str, str], device: str = "auto", photos: int = 200, videos: int = 20) -> str:
    """Files/s of ``batch`` on one folder: one file after another on PyTorch (how batch ran before the pipeline)
    against the pipeline on the default engine, in the same run."""
    lines = [f"batch on {photos} photos + {videos} two-second 360p videos (both models, torch threads "
             f"{torch.get_num_threads()}):"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "inputs"
        folder.mkdir()
        _batch_folder(folder, photos, videos)
        inputs = list_inputs(folder)
        rates = {}
        for label, runtime, prefetch in (("one after another, PyTorch", "torch", 0),
                                         ("pipelined, default engine", "auto", PREFETCH)):
            with Detector(specs, device=device, runtime=runtime) as detector:
                detector.analyze(inputs[0])  # warm-up
                engines = ", ".join(sorted({m.engine.name for m in detector.models}))
                result = run_batch(detector, inputs, Path(tmp) / f"{runtime}.csv", prefetch=prefetch, progress=False)
            rates[label] = result.files_per_s
            lines.append(f"  {label} ({engines}): {result.written} files in {result.seconds:.1f} s, "
                         f"{result.files_per_s:.2f} files/s")
        before, after = rates.values()
        lines.append(f"  speed-up: {after / before:.2f}x")
    return "\n".join(lines)
