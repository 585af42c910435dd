"""The analysis pipeline end to end on synthesized media, with small untrained models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_server import make_models

from deepfake_space.config import DetectorConfig
from deepfake_space.detector import Detector, file_track, temporal_clips
from deepfake_space.faces import Face
from deepfake_space.report import Report
from deepfake_space.synth import astronaut, write_face_video

VERDICTS = {"fake", "real", "uncertain"}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, str]:
    return make_models(tmp_path_factory.mktemp("models"), {"teacher": ("mobilenetv2_035", 96),
                                                           "student": ("resnet8", 64)})


@pytest.fixture(scope="module")
def detector(model_dirs) -> Detector:
    with Detector(model_dirs, device="cpu", num_frames=6) as d:
        yield d


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    Image.fromarray(astronaut()).save(root / "astronaut.png")
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "noise.png")
    write_face_video(root / "face.mp4", seconds=2, height=240, fps=15)
    (root / "notes.mp4").write_text("this is not a video")
    return {p.stem: p for p in root.iterdir()}


def test_image_gets_a_verdict_from_every_model(detector, files):
    analysis = detector.analyze(files["astronaut"], cams=1)
    report = analysis.report
    assert report.status == "ok" and report.kind == "image"
    assert report.faces_found >= 1 and report.detectors_used
    assert set(report.latency_ms) >= {"decode", "detect", "total"}
    for m in report.models:
        assert m.verdict in VERDICTS and 0.0 <= m.p_fake <= 1.0
        assert set(m.latency_ms) == {"preprocess", "forward", "gradcam"}
        assert m.params > 0 and m.file_size_mb > 0
        (face_index, cam), = analysis.cams[m.name]
        assert cam.shape == (m.input_size, m.input_size, 3) and cam.dtype == np.uint8
    face = report.frames[0].faces[0]
    assert set(face.p_fake) == {"teacher", "student"}
    assert report.speedup("student", "teacher") > 0


def test_no_face_is_never_a_verdict(detector, files):
    report = detector.analyze(files["noise"]).report
    assert report.status == "no_face" and "No face" in report.message
    assert all(m.verdict == "no_face" and m.p_fake is None for m in report.models)


def test_whole_image_mode_skips_detection(detector, files):
    report = detector.analyze(files["noise"], whole_image=True).report
    assert report.status == "ok" and report.detectors_used == ["whole_image"]
    assert all(m.verdict in VERDICTS for m in report.models)


def test_video_scores_every_sampled_frame(detector, files):
    report = detector.analyze(files["face"]).report
    assert report.status == "ok" and report.kind == "video"
    assert len(report.frames) == 6
    timestamps = [f.timestamp for f in report.frames]
    assert timestamps == sorted(timestamps)
    for m in report.models:
        assert len(m.frame_p_fake) == 6
        assert sum(m.track_frames.values()) == report.faces_found
        assert m.p_fake == m.track_p_fake[str(m.suspect_track)]
        assert m.track_frames[str(m.suspect_track)] >= min(3, max(m.track_frames.values()))


def test_the_file_is_the_most_suspicious_person_seen_long_enough():
    """A one-frame glimpse at P(fake) 0.99 does not outvote a person seen in every frame; among people seen
    long enough the most suspicious decides; with no long track the longest ones compete."""
    assert file_track({0: [0.2] * 6, 1: [0.99]}) == 0
    assert file_track({0: [0.2] * 6, 1: [0.7, 0.8, 0.9], 2: [0.99, 0.99]}) == 1
    assert file_track({0: [0.3, 0.4], 1: [0.9, 0.8], 2: [0.99]}) == 1
    assert file_track({0: [0.6]}) == 0


def test_bad_file_is_an_error_with_a_message(detector, files):
    report = detector.analyze(files["notes"]).report
    assert report.status == "error" and "notes.mp4" in report.message
    assert all(m.p_fake is None for m in report.models)


def test_report_json_round_trips(detector, files):
    report = detector.analyze(files["astronaut"]).report
    again = Report.from_json(report.to_json())
    assert again == report
    assert json.loads(again.to_json()) == json.loads(report.to_json())


def test_verdict_band():
    cfg = DetectorConfig(arch="resnet8", threshold=0.4, uncertain_band=0.1)
    assert cfg.verdict(0.9) == "fake" and cfg.verdict(0.2) == "real"
    assert cfg.verdict(0.45) == "uncertain" and cfg.verdict(0.31) == "uncertain"
    with pytest.raises(ValueError):
        DetectorConfig(arch="resnet8", threshold=1.5)


def test_temporal_clips_follow_each_person():
    batch = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1)
    faces = [(i, Face((0, 0, 1, 1), 1.0, "haar", i, track_id=0)) for i in range(3)]
    faces += [(i, Face((5, 5, 6, 6), 1.0, "haar", i, track_id=1)) for i in range(2)]
    clips = temporal_clips(batch, faces, num_frames=3)
    assert clips.shape == (5, 3, 1, 1, 1)
    assert clips[0].flatten().tolist() == [0, 1, 2]
    assert clips[3].flatten().tolist() == [3, 4, 4]


def test_per_face_latency_times_every_model_in_turn(detector):
    from deepfake_space.bench import per_face_latency_ms

    calls = []
    originals = {m.name: m.model.net.forward for m in detector.models}
    try:
        for m in detector.models:
            m.model.net.forward = lambda x, name=m.name: (calls.append(name), originals[name](x))[1]
        latency = per_face_latency_ms(detector.models, detector.device, rounds=2, burst=3)
    finally:
        for m in detector.models:
            del m.model.net.forward
    assert set(latency) == {"teacher", "student"}
    assert all(ms > 0 for ms in latency.values())
    # in turns of 3, not one model after the other
    assert calls[:12] == ["teacher"] * 3 + ["student"] * 3 + ["teacher"] * 3 + ["student"] * 3
    assert len(calls) == 2 * 3 * (2 + 1)
