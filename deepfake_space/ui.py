"""The Gradio Blocks: two models side by side on one upload, with Grad-CAM, latency and a JSON report.

All analysis happens in ``Detector.analyze`` and every value shown is computed by ``presentation``; this
module lays out the Blocks and wires the events. ``build_demo`` loads the models once and returns the Blocks;
``app.py`` queues and launches it. The main event is exposed as ``/analyze`` (see ``OUTPUTS`` for the order of its results).
"""
# ruff: noqa: E402  (the environment is set before gradio is imported)

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import copy
import hashlib
import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np

import deepfake_space
from deepfake_space import examples as example_media
from deepfake_space.detector import Analysis, Detector
from deepfake_space.media import DEFAULT_NUM_FRAMES, MEDIA_SUFFIXES
from deepfake_space.presentation import (LATENCY_HEADERS, cam_gallery, frame_gallery, label_file, latency_rows,
                                          model_info, report_files, report_timeline, status_box, status_html,
                                          summary_markdown, timeline_frame)
from deepfake_space.report import STATUS_ERROR, STATUS_OK, Report
from deepfake_space.model_choice import app_model_specs, model_precisions
from deepfake_space.space import gpu, on_zero_gpu

logger = logging.getLogger(__name__)

TITLE = "Deepfake detector: teacher vs distilled student"
MAX_UPLOAD_MB = 200  # Gradio refuses bigger uploads (launch(max_file_size=...)); the library has its own limits
MAX_FRAMES = 64
CAMS_PER_MODEL = 4  # Grad-CAM overlays of the most suspicious faces, per model
REPORT_MAX_AGE_S = 3600
# Gradio's example cache as configured when this module was imported; build_demo uses a sub-folder per model set.
EXAMPLES_CACHE_ROOT = os.environ.get("GRADIO_EXAMPLES_CACHE") or ".gradio/cached_examples"
# The results of /analyze, in order (gradio_client returns them as a tuple).
OUTPUTS = ["status", "summary", "label_a", "cams_a", "latency_a", "info_a", "label_b", "cams_b", "latency_b",
           "info_b", "timeline", "frames", "report_json", "report_file"]

# One colour per loaded model in the timeline.
SERIES_COLOURS = {"blue": "#2563eb", "orange": "#ea580c", "green": "#16a34a", "purple": "#9333ea", "red": "#dc2626",
                  "cyan": "#0891b2", "grey": "#6b7280"}
DESCRIPTION = """
Upload a face photo or a short video (mp4, webm, mov, avi, mkv), or pick an example, then press **Analyze**.
Both detectors see the same detected faces. The verdict is *fake*, *real* or *uncertain* (P(fake) between the
model's two cuts); Grad-CAM shows where each model looked. A video is judged by its most suspicious person.

Trained on DFDC face swaps (research use only), teacher-pair also on self-blends of real faces, and on
re-encoded, noisy and down-scaled copies, the student also on real photos: near chance on swaps from other tools,
blind to fully generated faces, lip-sync and expression edits, so they answer "uncertain" rather than accuse. A
verdict is not proof.
"""


def max_upload_mb() -> int:
    """The upload limit handed to ``launch(max_file_size=...)``: ``DEEPFAKE_MAX_UPLOAD_MB`` or 200."""
    return int(os.environ.get("DEEPFAKE_MAX_UPLOAD_MB") or MAX_UPLOAD_MB)


class DemoApp:
    """The loaded detector plus the callbacks; one instance per Blocks, shared by all sessions."""

    def __init__(self, detector: Detector, out_dir: Path | None = None) -> None:
        self.detector = detector
        self.models = {m.name: m for m in detector.models}
        self.names = list(self.models)
        self.out_dir = Path(out_dir or example_media.cache_dir() / "reports")

    @property
    def default_pair(self) -> tuple[str, str]:
        a = "teacher" if "teacher" in self.models else self.names[0]
        rest = [n for n in self.names if n != a]
        b = "student" if "student" in rest else (rest[0] if rest else a)
        return a, b

    def _detector_for(self, names: list[str]) -> Detector:
        """The shared detector restricted to the chosen models (same face detector, same loaded weights)."""
        if names == self.names:
            return self.detector
        restricted = copy.copy(self.detector)
        restricted.models = [self.models[n] for n in names]
        return restricted

    def _request_dir(self) -> Path:
        now = time.time()
        if self.out_dir.is_dir():
            for old in self.out_dir.iterdir():
                try:
                    if now - old.stat().st_mtime > REPORT_MAX_AGE_S:
                        shutil.rmtree(old, ignore_errors=True)
                except OSError:
                    pass
        folder = self.out_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def warm_up(self, image: str | Path) -> None:
        """Run every model once (with and without face detection) so the first user does not pay for
        lazy initialisation and sees representative latencies."""
        start = time.perf_counter()
        for whole_image in (True, False):
            self.detector.analyze(image, whole_image=whole_image, cams=1)
        logger.info("warmed up on %s in %.0f ms", Path(image).name, (time.perf_counter() - start) * 1000)

    def empty(self, status: str) -> tuple:
        """Every output cleared, with ``status`` in the status box."""
        none_latency = latency_rows(Report(file=""), None)
        return (status, "", None, [], none_latency, "", None, [], none_latency, "", report_timeline(Report(file="")),
                [], None, None)

    def analyze(self, media: str | None, whole_image: bool = False, frames: float = DEFAULT_NUM_FRAMES,
                model_a: str | None = None, model_b: str | None = None) -> tuple:
        """The /analyze event: a file and the two chosen models -> every output (see ``OUTPUTS``)."""
        if not media:
            return self.empty(status_html("idle", "Upload an image or a video, or pick an example, then press "
                                                  "Analyze."))
        default_a, default_b = self.default_pair
        chosen = [model_a or default_a, model_b or default_b]
        unknown = [n for n in chosen if n not in self.models]
        if unknown:
            return self.empty(status_html(STATUS_ERROR, f"Unknown model {unknown[0]!r}.",
                                          f"Loaded models: {', '.join(self.names)}."))
        try:
            num_frames = int(min(max(int(frames or DEFAULT_NUM_FRAMES), 1), MAX_FRAMES))
            analysis = self._detector_for(list(dict.fromkeys(chosen))).analyze(
                media, whole_image=bool(whole_image), num_frames=num_frames, cams=CAMS_PER_MODEL)
            return self._outputs(analysis, chosen)
        except Exception as e:  # noqa: BLE001 - an unexpected failure becomes a message, never a traceback
            logger.exception("unexpected failure analysing %s", media)
            return self.empty(status_html(STATUS_ERROR, f"Could not analyse {Path(media).name}: unexpected error.",
                                          f"{type(e).__name__}; the details were logged on the server."))

    def _outputs(self, analysis: Analysis, chosen: list[str]) -> tuple:
        report = analysis.report
        folder = self._request_dir()
        report_json, report_file = report_files(report, chosen, folder)
        columns = []
        for name in chosen:
            m = next((m for m in report.models if m.name == name), None)
            if m is None or report.status != STATUS_OK:
                columns += [None, [], latency_rows(report, None), model_info(m) if m else ""]
            else:
                columns += [label_file(m, folder), cam_gallery(analysis, name, folder), latency_rows(report, m),
                            model_info(m)]
        return (status_box(report), summary_markdown(report, chosen), *columns, report_timeline(report),
                frame_gallery(analysis, folder), report_json, report_file)


def _restore_plot_from_cache(plot: gr.LinePlot) -> None:
    """Cached examples store a plot as a JSON string, and ``LinePlot`` (no data model) hands that string
    back as is, which the browser draws as an empty plot; parse it back (Gradio 6.31)."""

    def read_from_flag(payload: Any) -> Any:
        return json.loads(payload) if isinstance(payload, str) and payload.startswith("{") else payload

    plot.read_from_flag = read_from_flag  # type: ignore[method-assign]


def _model_column(app: DemoApp, title: str, value: str, suffix: str) -> dict[str, gr.components.Component]:
    with gr.Column(variant="panel"):
        dropdown = gr.Dropdown(app.names, value=value, label=title, interactive=True, elem_id=f"model-{suffix}")
        label = gr.Label(label="Verdict and P(fake)", elem_id=f"verdict-{suffix}")
        cams = gr.Gallery(label="Grad-CAM on the most suspicious faces", columns=2, fit_columns=False,
                          height=320, object_fit="contain", elem_id=f"cams-{suffix}")
        latency = gr.Dataframe(value=latency_rows(Report(file=""), None), headers=LATENCY_HEADERS,
                               datatype=["str", "number"], label="Latency (ms)", interactive=False,
                               elem_id=f"latency-{suffix}")
        info = gr.Markdown(elem_id=f"info-{suffix}")
    return {"dropdown": dropdown, "label": label, "cams": cams, "latency": latency, "info": info}


def _examples_cache_per_model_set(detector: Detector) -> None:
    """Point Gradio's example cache (``GRADIO_EXAMPLES_CACHE``) at a sub-folder keyed by the loaded models
    and the outputs, so results cached for other weights (say, before retraining) are never shown."""
    key = [deepfake_space.__version__, OUTPUTS]
    for m in detector.models:
        weights = Path(m.spec) / "model.safetensors"
        stamp = [weights.stat().st_size, weights.stat().st_mtime_ns] if weights.is_file() else None
        key.append([m.name, m.spec, m.params, stamp])
    digest = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:12]
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(Path(EXAMPLES_CACHE_ROOT) / digest)


def build_demo(detector: Detector | None = None, *, with_examples: bool = True, warm_up: bool = True,
               gpu_decorator: Callable[[Callable], Callable] | None = None) -> gr.Blocks:
    """Load the models (unless ``detector`` is given) and build the Blocks. Call ``.queue()`` and ``.launch()``.

    Models come from ``model_choice.app_model_specs()`` (env ``DEEPFAKE_TEACHER`` / ``DEEPFAKE_STUDENT`` /
    ``DEEPFAKE_MODELS``, else the embedded folders) and move to CUDA when there is one. ``warm_up`` runs
    them once on an example crop (skipped on ZeroGPU, where CUDA is only lent inside ``@spaces.GPU``).
    """
    if detector is None:
        specs = app_model_specs()
        detector = Detector(specs, device="auto", precision=model_precisions(specs))
    app = DemoApp(detector)
    _examples_cache_per_model_set(detector)
    crops = example_media.face_crops()
    if warm_up and crops and not on_zero_gpu():
        app.warm_up(crops[0].path)
    analyze = (gpu_decorator or gpu)(app.analyze)
    default_a, default_b = app.default_pair

    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\n{DESCRIPTION}")
        with gr.Row():
            with gr.Column(scale=1, min_width=280) as left:
                media = gr.File(label="Image or video", file_types=sorted(MEDIA_SUFFIXES), type="filepath",
                                elem_id="media")
                whole_image = gr.Checkbox(label="input is already a face crop (skip face detection)", value=False,
                                          elem_id="whole-image")
                frames = gr.Slider(1, MAX_FRAMES, value=DEFAULT_NUM_FRAMES, step=1, label="frames sampled (videos)",
                                   elem_id="frames")
                button = gr.Button("Analyze", variant="primary", elem_id="analyze")
            with gr.Column(scale=3):
                status = gr.HTML(status_html("idle", "Upload an image or a video, or pick an example."),
                                 elem_id="status")
                summary = gr.Markdown(elem_id="summary")
                with gr.Row(equal_height=False):
                    col_a = _model_column(app, "Model A", default_a, "a")
                    col_b = _model_column(app, "Model B", default_b, "b")
                # The browser fixes the colour domain from the first value: start with one empty point per
                # model. Its legend does not draw (Gradio 6.31), so the caption names the colours.
                colours = dict(zip(app.names, list(SERIES_COLOURS) * len(app.names)))
                timeline = gr.LinePlot(timeline_frame([(np.nan, np.nan, name) for name in app.names]),
                                       x="time_s", y="p_fake", color="model", colors_in_legend=[],
                                       color_map={name: SERIES_COLOURS[c] for name, c in colours.items()},
                                       caption="time in seconds; " + ", ".join(f"{n}: {c}" for n, c in colours.items()),
                                       y_lim=[0, 1], x_title="time (s)", y_title="P(fake)",
                                       label="P(fake) per sampled frame (videos)", elem_id="timeline")
                _restore_plot_from_cache(timeline)
                sampled = gr.Gallery(label="Sampled frames and detected faces", columns=6, fit_columns=False,
                                     height="auto", object_fit="contain", elem_id="frames-gallery")
                with gr.Accordion("JSON report", open=False):
                    report_file = gr.File(label="report.json", elem_id="report-file")
                    report_json = gr.JSON(label="Report", elem_id="report-json")

        inputs = [media, whole_image, frames, col_a["dropdown"], col_b["dropdown"]]
        outputs = [status, summary,
                   col_a["label"], col_a["cams"], col_a["latency"], col_a["info"],
                   col_b["label"], col_b["cams"], col_b["latency"], col_b["info"],
                   timeline, sampled, report_json, report_file]
        assert len(outputs) == len(OUTPUTS)
        button.click(analyze, inputs, outputs, api_name="analyze")
        if with_examples:
            rows = example_media.all_examples()
            if rows:
                with left:  # under the Analyze button; built here because it needs the outputs
                    gr.Examples([[str(e.path), e.whole_image, DEFAULT_NUM_FRAMES, default_a, default_b] for e in rows],
                                inputs=inputs, outputs=outputs, fn=analyze, cache_examples=True, cache_mode="lazy",
                                example_labels=[e.label for e in rows], visible_columns=[0, 1],
                                label="Examples (the result is cached after the first run)")
    return demo
