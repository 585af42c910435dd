"""What the page shows, computed from reports without a server (deepfake_space.presentation)."""

from __future__ import annotations

import json

from deepfake_space.presentation import (label_file, latency_rows, model_info, report_files, report_timeline,
                                         status_box, summary_markdown)
from deepfake_space.report import FaceReport, FrameReport, ModelReport, Report


def _model(name: str, verdict: str, p: float, forward_ms: float, runtime: str = "onnx fp32") -> ModelReport:
    return ModelReport(name=name, spec=f"models/{name}", arch="resnet8", params=121_000, file_size_mb=0.47,
                       input_size=112, threshold=0.5, uncertain_band=0.1, runtime=runtime, verdict=verdict, p_fake=p,
                       frame_p_fake=[p, None, p / 2], latency_ms={"preprocess": 1.0, "forward": forward_ms})


def _video(a_verdict: str = "fake", b_verdict: str = "real") -> Report:
    frames = [FrameReport(0, 0.0, [FaceReport([0, 0, 10, 10], 0.9, "mediapipe", 0)]), FrameReport(1, 0.5),
              FrameReport(2, 1.0, [FaceReport([1, 1, 11, 11], 0.9, "mediapipe", 0)])]
    return Report(file="clip.mp4", kind="video", width=1280, height=720, duration=1.5, fps=30.0,
                  detectors_used=["mediapipe"], frames=frames, latency_ms={"decode": 12.0, "detect": 30.0, "total": 80},
                  models=[_model("teacher", a_verdict, 0.91, 19.0, "torch"), _model("student", b_verdict, 0.2, 1.0)])


def test_summary_says_who_disagrees_and_how_much_faster():
    text = summary_markdown(_video(), ["teacher", "student"])
    assert "**Disagreement:** teacher says *fake*, student says *real*." in text
    assert "Speed-up of student over teacher: 10.0×" in text
    assert "3 frames sampled**, faces in 2" in text and "face detector: mediapipe" in text
    assert "**Agreement:** teacher and student both say *fake*" in summary_markdown(_video("fake", "fake"),
                                                                                   ["teacher", "student"])


def test_status_box_for_each_outcome_escapes_what_comes_from_files():
    assert "Analysed clip.mp4: 2 faces in 3 sampled frames." in status_box(_video())
    no_face = Report(file="sky.jpg", status="no_face", message="No face was found in the image; no verdict.")
    assert "No face found, so no verdict." in status_box(no_face) and "df-status-no_face" in status_box(no_face)
    error = Report(file="<b>x</b>.mp4", status="error", message="broken <script>")
    box = status_box(error)
    assert "&lt;b&gt;x&lt;/b&gt;.mp4" in box and "<script>" not in box and "df-status-error" in box


def test_latency_model_info_and_timeline():
    report = _video()
    rows = latency_rows(report, report.models[1])
    assert rows[0] == ["decode", 12.0] and rows[-1] == ["total", 44.0]
    assert latency_rows(report, None) == [["decode", 12.0], ["face detection", 30.0]]
    info = model_info(report.models[1])
    assert "**0.12 M** params" in info and "forwards on onnx fp32" in info and "real below 0.40, fake above 0.60" in info
    timeline = report_timeline(report)
    assert list(timeline.columns) == ["time_s", "p_fake", "model"] and len(timeline) == 4  # None frames left out
    assert report_timeline(Report(file="a.png", kind="image")).empty


def test_label_and_report_files(tmp_path):
    report = _video()
    label = json.loads(open(label_file(report.models[0], tmp_path)).read())
    assert label["label"] == "fake" and label["confidences"][0] == {"label": "fake", "confidence": 0.91}
    assert label_file(ModelReport("m", "s", "a", 1, 0.1, 64, 0.5, 0.1), tmp_path) is None  # no verdict, no label
    data, path = report_files(report, ["teacher", "student"], tmp_path)
    assert data["comparison"] == {"models": ["teacher", "student"], "agreement": False, "speedup": 10.0}
    assert json.loads(open(path).read()) == data
