"""``deepfake-space bench``: per-stage latency of the pipeline against the seed system's naive loop.

Both are measured in the same run on the same synthesized 720p video, so the ratio is meaningful on
any machine. The naive loop is how the seed system did it: decode every frame with OpenCV, detect
faces at full resolution, one forward pass per frame per model.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch
from PIL import Image

from deepfake_space.detector import Detector, LoadedModel
from deepfake_space.faces import FaceDetector, crop_face
from deepfake_space.report import Report
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
def per_face_latency_ms(models: list[LoadedModel], device: torch.device, repeats: int = 60) -> dict[str, float]:
    """Median forward time of one face (batch 1) per model.

    The models take turns, one forward each per round, so a slow spell of a shared CPU hits all of them
    alike and their ratio stays meaningful."""
    inputs = {}
    for m in models:
        cfg = m.model.config
        inputs[m.name] = model_layout(torch.randn(1, 3, cfg.input_size, cfg.input_size, device=device,
                                                  dtype=next(m.model.parameters()).dtype))
    times: dict[str, list[float]] = {m.name: [] for m in models}
    for round_ in range(repeats + 5):
        for m in models:
            start = time.perf_counter()
            m.model(inputs[m.name])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_ >= 5:  # the first rounds warm up allocators and kernels
                times[m.name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


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


def run_bench(specs: dict[str, str], device: str = "auto", seconds: float = 10.0, height: int = 720,
              frames: int = 16, repeats: int = 3) -> str:
    """Measure and return the figures as text (the first model is taken as the teacher)."""
    with tempfile.TemporaryDirectory() as tmp, Detector(specs, device=device, num_frames=frames) as detector:
        video = write_face_video(Path(tmp) / "bench.mp4", seconds=seconds, height=height)
        image = Path(tmp) / "bench.png"
        Image.fromarray(astronaut()).save(image)
        lines = [f"device: {detector.device}, torch threads: {torch.get_num_threads()}", "", "models:"]
        per_face = per_face_latency_ms(detector.models, detector.device)
        for m in detector.models:
            lines.append(f"  {m.name:<10} {m.model.config.arch:<20} {m.params / 1e6:8.3f}M params "
                         f"{m.file_size_mb:8.2f} MB  {per_face[m.name]:7.2f} ms per face (batch 1)")
        names = [m.name for m in detector.models]
        params = {m.name: m.params for m in detector.models}
        for slow, fast in zip(names[:1] * (len(names) - 1), names[1:]):
            lines.append(f"  {fast} vs {slow}: {per_face[slow] / per_face[fast]:.1f}x faster per face, "
                         f"{params[slow] / params[fast]:.0f}x fewer params")
        report, wall = _median_reports(detector, image, repeats, cams=1)
        lines += ["", f"image 512x512 -> all verdicts + Grad-CAM (median of {repeats}):", *_stage_table(report, wall)]
        report, wall = _median_reports(detector, video, repeats)
        lines += ["", f"video {seconds:.0f} s {height}p, {frames} frames sampled -> all verdicts "
                      f"(median of {repeats}):", *_stage_table(report, wall)]
        naive = naive_loop_ms(detector, video)
        total_frames = int(seconds * 30)
        lines += ["", f"naive loop (OpenCV decodes all {total_frames} frames, full-resolution detection, batch-1 "
                      f"forwards): {naive:.0f} ms", f"pipeline speed-up over the naive loop: {naive / wall:.1f}x"]
        return "\n".join(lines)
