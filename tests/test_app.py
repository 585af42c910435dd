"""The app as users reach it: ``python app.py`` on 127.0.0.1 with small untrained models, driven through
``gradio_client`` (the ``/analyze`` endpoint), plus the callbacks' glue in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from deepfake_space.synth import astronaut, write_face_video
from app_server import REPO, TEST_MODELS, make_models, serve_app

VERDICTS = {"fake", "real", "uncertain"}
OUTPUTS = ["status", "summary", "label_a", "cams_a", "latency_a", "info_a", "label_b", "cams_b", "latency_b",
           "info_b", "timeline", "frames", "report_json", "report_file"]
UPLOAD_LIMIT_MB = 2


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, str]:
    return make_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(model_dirs, tmp_path_factory):
    with serve_app(model_dirs, tmp_path_factory.mktemp("app"),
                   env={"DEEPFAKE_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB)}) as s:
        yield s


@pytest.fixture(scope="module")
def client(server, tmp_path_factory) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    Image.fromarray(astronaut()).save(root / "astronaut.png")
    yy, xx = np.mgrid[0:240, 0:320]
    gradient = np.stack([xx * 255 // 319, yy * 255 // 239, np.full_like(xx, 128)], -1).astype(np.uint8)
    Image.fromarray(gradient).save(root / "no_face.png")
    write_face_video(root / "face.mp4", seconds=2, height=240, fps=12)
    data = (root / "face.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (root / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    (root / "empty.mp4").write_bytes(b"")
    (root / "big.png").write_bytes(np.random.default_rng(0).bytes((UPLOAD_LIMIT_MB + 1) * 2**20))
    with av.open(str(root / "long.mp4"), "w") as container:  # past the library's 600 s limit, tiny
        stream = container.add_stream("libx264", rate=1)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for i in range(605):
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return {p.name: p for p in root.iterdir()}


def analyze(client: Client, path: Path, whole_image: bool = False, frames: int = 16, a: str = "teacher",
            b: str = "student") -> dict:
    result = client.predict(handle_file(str(path)), whole_image, frames, a, b, api_name="/analyze")
    assert len(result) == len(OUTPUTS)
    return dict(zip(OUTPUTS, result))


def latency(table: dict) -> dict[str, float | None]:
    return {row[0]: row[1] for row in table["data"]}


def test_image_gets_both_verdicts_cams_and_latencies(client, files):
    out = analyze(client, files["astronaut.png"])
    assert "Analysed" in out["status"], out["status"]
    for side in "ab":
        label = out[f"label_{side}"]
        assert label["label"] in VERDICTS
        assert {c["label"] for c in label["confidences"]} == {"fake", "real"}
        assert out[f"cams_{side}"], f"no Grad-CAM image for model {side}"
        assert all(Path(item["image"]).is_file() for item in out[f"cams_{side}"])
        stages = latency(out[f"latency_{side}"])
        assert {"decode", "face detection", "preprocessing", "forward", "Grad-CAM", "total"} <= set(stages)
        assert all(v is not None and v >= 0 for v in stages.values())
        assert "params" in out[f"info_{side}"] and "MB" in out[f"info_{side}"]
    assert "Speed-up of student over teacher" in out["summary"]
    assert "greement" in out["summary"]
    report = out["report_json"]
    assert report["status"] == "ok" and report["kind"] == "image"
    assert [m["name"] for m in report["models"]] == ["teacher", "student"]
    assert report["comparison"]["models"] == ["teacher", "student"]
    assert json.loads(Path(out["report_file"]).read_text()) == report
    assert out["frames"], "the analysed image is shown"


def test_video_gets_a_timeline_for_both_models(client, files):
    out = analyze(client, files["face.mp4"], frames=6)
    assert "Analysed" in out["status"], out["status"]
    report = out["report_json"]
    assert report["kind"] == "video" and len(report["frames"]) == 6
    assert "6 frames sampled" in out["summary"] and "face detector" in out["summary"]
    plot = out["timeline"]  # the LinePlot's data: {"columns": [...], "data": [[...], ...], ...}
    assert plot["columns"] == ["time_s", "p_fake", "model"]
    rows = [dict(zip(plot["columns"], r)) for r in plot["data"]]
    assert len(rows) == 2 * 6
    assert {r["model"] for r in rows} == {"teacher", "student"}
    assert all(0.0 <= r["p_fake"] <= 1.0 for r in rows)
    assert out["cams_a"] and out["cams_b"]
    assert "t=" in out["cams_a"][0]["caption"]
    assert len(out["frames"]) == 6


def test_models_are_picked_per_column(client, files):
    out = analyze(client, files["astronaut.png"], a="student-scratch", b="teacher")
    assert [m["name"] for m in out["report_json"]["models"]] == ["student-scratch", "teacher"]
    assert "resnet8" in out["info_a"] and "mobilenetv2_035" in out["info_b"]
    same = analyze(client, files["astronaut.png"], a="student", b="student")
    assert [m["name"] for m in same["report_json"]["models"]] == ["student"]
    assert same["label_a"] == same["label_b"]


def test_whole_image_mode_skips_face_detection(client, files):
    out = analyze(client, files["no_face.png"], whole_image=True)
    assert "Analysed" in out["status"]
    assert out["report_json"]["face_mode"] == "whole_image"
    assert out["label_a"]["label"] in VERDICTS


def test_no_face_is_said_plainly_with_no_verdict(client, files):
    out = analyze(client, files["no_face.png"])
    assert "No face" in out["status"]
    assert not out["label_a"] and not out["label_b"]  # no verdict on nothing
    assert not out["cams_a"] and not out["cams_b"]
    assert out["frames"], "the frame that was searched is shown"
    assert out["report_json"]["status"] == "no_face"
    assert all(m["p_fake"] is None for m in out["report_json"]["models"])


@pytest.mark.parametrize("name, words", [("notes.mp4", "not an image or video"), ("empty.mp4", "empty"),
                                         ("truncated.mp4", "damaged or truncated"), ("long.mp4", "600 s")])
def test_bad_files_get_a_clear_message(client, server, files, name, words):
    out = analyze(client, files[name])
    assert "Could not analyse" in out["status"] and words in out["status"], out["status"]
    assert "Traceback" not in out["status"]
    assert not out["label_a"] and not out["label_b"]
    assert out["report_json"]["status"] == "error"
    assert server.answers()


def test_too_large_upload_is_refused_and_the_server_keeps_answering(client, server, files):
    with pytest.raises(Exception, match="(?i)size|large|413"):
        analyze(client, files["big.png"])
    assert server.answers()
    assert "Analysed" in analyze(client, files["astronaut.png"])["status"]


def test_eight_clients_at_once_are_all_answered(server, files, tmp_path):
    results: dict[int, str] = {}

    def one(i: int) -> None:
        try:
            c = Client(server.url, verbose=False, download_files=str(tmp_path / str(i)))
            results[i] = analyze(c, files["astronaut.png"])["status"]
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results[i] = f"failed: {e!r}"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(results) == 8
    assert all("Analysed" in s for s in results.values()), results


def test_no_file_asks_for_one(client):
    out = dict(zip(OUTPUTS, client.predict(None, False, 16, "teacher", "student", api_name="/analyze")))
    assert "Upload an image or a video" in out["status"]
    assert not out["label_a"]


# -- in-process: the glue, without a server -------------------------------------------------------------------


def test_an_unexpected_exception_becomes_a_message(tmp_path, caplog):
    from deepfake_space import ui
    from deepfake_space.ui import DemoApp

    assert ui.OUTPUTS == OUTPUTS  # the order this module reads /analyze's results in

    def boom(*args, **kwargs):
        raise ZeroDivisionError("secret internals")

    detector = SimpleNamespace(models=[SimpleNamespace(name="teacher"), SimpleNamespace(name="student")],
                               analyze=boom)
    app = DemoApp(detector, out_dir=tmp_path)  # type: ignore[arg-type]
    out = dict(zip(OUTPUTS, app.analyze(str(tmp_path / "x.png"), False, 16, "teacher", "student")))
    assert "unexpected error" in out["status"] and "ZeroDivisionError" in out["status"]
    assert "secret internals" not in out["status"]
    assert out["label_a"] is None and out["label_b"] is None
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)


def test_importing_app_does_no_work():
    code = "import sys, app; assert 'gradio' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_space_helpers(monkeypatch, tmp_path):
    from deepfake_space import model_choice, space

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    assert space.server_name() == "127.0.0.1" and space.server_port() == 7860
    monkeypatch.setenv("SPACE_ID", "org/space")
    assert space.server_name() == "0.0.0.0"
    monkeypatch.setenv("DEEPFAKE_TEACHER", "org/teacher@v1")
    monkeypatch.setenv("DEEPFAKE_STUDENT", str(tmp_path))
    monkeypatch.setenv("DEEPFAKE_MODELS", "extra=org/extra@main")
    assert model_choice.app_model_specs() == {"teacher": "org/teacher@v1", "student": str(tmp_path),
                                       "extra": "org/extra@main"}
    monkeypatch.delenv("DEEPFAKE_MODELS")
    (tmp_path / "model.int8.onnx").write_bytes(b"")
    specs = model_choice.app_model_specs()
    assert specs["student (int8)"] == str(tmp_path), "the student's int8 file is one more model to compare"
    assert model_choice.model_precisions(specs)["student (int8)"] == "int8"
    assert model_choice.model_precisions(specs)["teacher"] == "fp32"
    assert space.gpu(lambda x: x + 1)(1) == 2  # spaces.GPU is a no-op off ZeroGPU
    assert space.gpu(duration=10)(lambda: "ok")() == "ok"
    assert set(TEST_MODELS) == {"teacher", "student", "student-scratch"}


def test_torch_threads_share_the_cpus(monkeypatch):
    import torch

    from deepfake_space import space

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("DEEPFAKE_TORCH_THREADS", raising=False)
        assert space.configure_torch_threads(space.available_cpus() * 4) == 1  # never below one
        monkeypatch.setenv("DEEPFAKE_TORCH_THREADS", "3")
        assert space.configure_torch_threads(2) == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
