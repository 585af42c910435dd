"""What the app shows, computed from an ``Analysis``: pure functions from a report to component values.

No Gradio here, so every value the page shows is unit-tested without a server (tests/test_presentation.py);
``ui`` only lays out the Blocks and hands these values to the components. Images are written as files into a
per-request folder, because that is what Gradio serves safely (``save_jpeg``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from deepfake_space.detector import Analysis
from deepfake_space.report import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, ModelReport, Report

MAX_THUMB_SIDE = 480
TIMELINE_COLUMNS = ["time_s", "p_fake", "model"]
LATENCY_HEADERS = ["stage", "ms"]
STATUS_COLOURS = {"idle": ("#eef2f7", "#1f2937"), STATUS_OK: ("#e8f5e9", "#1b5e20"),
                  STATUS_NO_FACE: ("#fff8e1", "#7a5b00"), STATUS_ERROR: ("#ffebee", "#b71c1c")}


def status_html(kind: str, title: str, detail: str = "") -> str:
    """A coloured status box; everything user- or file-derived is escaped."""
    bg, fg = STATUS_COLOURS.get(kind, STATUS_COLOURS["idle"])
    body = f"<strong>{html.escape(title)}</strong>"
    if detail:
        body += f"<br><span>{html.escape(detail)}</span>"
    return (f'<div class="df-status df-status-{kind}" style="background:{bg};color:{fg};padding:10px 14px;'
            f'border-radius:8px;border:1px solid {fg}33">{body}</div>')


def flat_faces(report: Report) -> list[tuple[int, Any]]:
    """(frame position, FaceReport) in the order the detector batched them (the CAM index refers to it)."""
    return [(fi, face) for fi, frame in enumerate(report.frames) for face in frame.faces]


def label_file(m: ModelReport, folder: Path) -> str | None:
    """gr.Label value: the verdict (fake / real / uncertain) as its label and P(fake) / P(real) as confidences.

    Written as a JSON file because that is the one form ``gr.Label`` accepts with a label of our choosing
    (a dict would make the higher probability the label, which is wrong for 'uncertain' and for thresholds
    other than 0.5).
    """
    if m.p_fake is None:
        return None
    path = folder / f"label_{m.name}.json"
    path.write_text(json.dumps({"label": m.verdict, "confidences": [
        {"label": "fake", "confidence": m.p_fake}, {"label": "real", "confidence": round(1 - m.p_fake, 5)}]}))
    return str(path)


def save_jpeg(image: np.ndarray | Image.Image, path: Path) -> str:
    """Images go to the components as files of our own: Gradio writes returned arrays into its cache
    non-atomically under a content hash, so two requests returning the same picture could serve a
    half-written file; files are copied in atomically."""
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, quality=90)
    return str(path)


def cam_gallery(analysis: Analysis, name: str, folder: Path) -> list[tuple[str, str]]:
    report, flat = analysis.report, flat_faces(analysis.report)
    several = len({face.track_id for _, face in flat}) > 1
    items = []
    for n, (index, image) in enumerate(analysis.cams.get(name, [])):
        fi, face = flat[index]
        where = [f"t={report.frames[fi].timestamp:.2f} s"] if report.kind == "video" else []
        who = [f"face {face.track_id + 1}"] if several else []
        caption = " · ".join(where + who + [f"P(fake) {face.p_fake.get(name, float('nan')):.2f}"])
        items.append((save_jpeg(image, folder / f"cam_{name}_{n}.jpg"), caption))
    return items


def latency_rows(report: Report, m: ModelReport | None) -> list[list[Any]]:
    shared = [["decode", report.latency_ms.get("decode")], ["face detection", report.latency_ms.get("detect")]]
    if m is None:
        return [[k, None if v is None else round(v, 1)] for k, v in shared]
    own = [["preprocessing", m.latency_ms.get("preprocess")], ["forward", m.latency_ms.get("forward")],
           ["Grad-CAM", m.latency_ms.get("gradcam")]]
    rows = [[k, None if v is None else round(v, 1)] for k, v in shared + own]
    rows.append(["total", round(sum(v for _, v in rows if v is not None), 1)])
    return rows


def model_info(m: ModelReport) -> str:
    real_cut, fake_cut = m.cuts
    return (f"`{m.arch}` · **{m.params / 1e6:.2f} M** params · **{m.file_size_mb:.2f} MB** · input {m.input_size} px"
            f" · real below {real_cut:.2f}, fake above {fake_cut:.2f} (uncertain between)"
            f" · forwards on {m.runtime}"
            + (" · each face averaged with its mirror" if m.tta else ""))


def timeline_frame(rows: list[tuple[float, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=TIMELINE_COLUMNS).astype({"time_s": float, "p_fake": float, "model": str})


def report_timeline(report: Report) -> pd.DataFrame:
    rows = []
    if report.kind == "video":
        for m in report.models:
            rows += [(report.frames[i].timestamp, p, m.name) for i, p in enumerate(m.frame_p_fake) if p is not None]
    return timeline_frame(rows)


def frame_gallery(analysis: Analysis, folder: Path) -> list[tuple[str, str]]:
    """The sampled frames, downscaled, with the detected faces boxed."""
    if analysis.media is None:
        return []
    items = []
    for frame, frame_report in zip(analysis.media.frames, analysis.report.frames):
        image = Image.fromarray(frame.image)
        scale = min(1.0, MAX_THUMB_SIDE / max(image.size))
        if scale < 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        draw = ImageDraw.Draw(image)
        for face in frame_report.faces:
            draw.rectangle([v * scale for v in face.box], outline=(255, 64, 64), width=3)
        n = len(frame_report.faces)
        when = f"t={frame_report.timestamp:.2f} s · " if analysis.report.kind == "video" else ""
        items.append((save_jpeg(image, folder / f"frame_{frame_report.index}.jpg"),
                      f"{when}{n} face{'s' if n != 1 else ''}"))
    return items


def summary_markdown(report: Report, names: list[str]) -> str:
    lines = []
    if report.status == STATUS_OK:
        a, b = report.model(names[0]), report.model(names[-1])
        if a.name == b.name:
            lines.append(f"**Both columns show {a.name}**: verdict *{a.verdict}*.")
        elif report.agreement():
            lines.append(f"**Agreement:** {a.name} and {b.name} both say *{a.verdict}*.")
        else:
            lines.append(f"**Disagreement:** {a.name} says *{a.verdict}*, {b.name} says *{b.verdict}*.")
        speedup = report.speedup(b.name, a.name)
        if speedup is not None and a.name != b.name:
            ms = [sum(v for k, v in m.latency_ms.items() if k in ("preprocess", "forward")) for m in (a, b)]
            lines.append(f"**Speed-up of {b.name} over {a.name}: {speedup:.1f}×** "
                         f"(preprocessing + forward: {ms[1]:.1f} ms vs {ms[0]:.1f} ms).")
    if report.kind == "video":
        with_faces = sum(1 for f in report.frames if f.faces)
        lines.append(f"**Video:** {report.duration or 0:.1f} s at {report.fps or 0:.0f} fps, "
                     f"{report.width}×{report.height} · **{len(report.frames)} frames sampled**, "
                     f"faces in {with_faces}")
    elif report.kind == "image":
        lines.append(f"**Image:** {report.width}×{report.height}")
    if report.kind:
        mode = "whole image taken as the face" if report.face_mode == "whole_image" else "faces detected"
        lines.append(f"**Faces:** {report.faces_found} ({mode}) · face detector: "
                     f"{', '.join(report.detectors_used) or 'none fired'} · device: {report.device}")
    return "  \n".join(lines)


def status_box(report: Report) -> str:
    if report.status == STATUS_OK:
        what = f"{report.faces_found} face{'s' if report.faces_found != 1 else ''}"
        if report.kind == "video":
            what += f" in {len(report.frames)} sampled frames"
        return status_html(STATUS_OK, f"Analysed {report.file}: {what}.",
                           f"Total {report.latency_ms.get('total', 0):.0f} ms on {report.device}.")
    if report.status == STATUS_NO_FACE:
        return status_html(STATUS_NO_FACE, "No face found, so no verdict.", report.message)
    return status_html(STATUS_ERROR, f"Could not analyse {report.file or 'this file'}.", report.message)


def report_files(report: Report, names: list[str], folder: Path) -> tuple[dict, str]:
    data = report.to_dict()
    if report.status == STATUS_OK:
        a, b = names[0], names[-1]
        data["comparison"] = {"models": [a, b], "agreement": report.agreement(),
                              "speedup": report.speedup(b, a)}
    path = folder / "report.json"
    path.write_text(json.dumps(data, indent=2))
    return data, str(path)
