"""The bench commands run end to end on small untrained models and print every figure they promise."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from app_server import make_models

from deepfake_space.bench import _speedups, run_batch_bench, run_bench


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict[str, str]:
    return make_models(tmp_path_factory.mktemp("bench_models"), {"teacher": ("mobilenetv2_035", 96),
                                                                 "student": ("dsnet_tiny", 64)})


def test_bench_prints_latency_speedups_walls_and_memory(specs):
    text = run_bench(specs, device="cpu", seconds=1, height=240, frames=4, repeats=1)
    assert "engines: torch" in text, "no model.onnx in these folders: PyTorch only"
    assert "student vs teacher:" in text and "x faster per face" in text
    assert "x fewer params" in text  # the student is the smaller
    assert "[torch] image 512x512 -> all verdicts" in text and "[torch] video 1 s 240p" in text
    assert "naive loop" in text and "peak RSS of this process:" in text


def test_speedups_say_slower_and_more_for_a_model_bigger_than_the_teacher():
    models = [SimpleNamespace(name="teacher", params=100), SimpleNamespace(name="pair", params=200),
              SimpleNamespace(name="student", params=4)]
    lines = _speedups({"teacher": 10.0, "pair": 16.0, "student": 1.0}, models)
    assert lines == ["    pair vs teacher: 1.6x slower per face, 2.0x more params",
                     "    student vs teacher: 10.0x faster per face, 25.0x fewer params"]


def test_batch_bench_compares_before_and_after(specs):
    text = run_batch_bench(specs, device="cpu", photos=4, videos=1)
    assert "one after another, PyTorch (torch): 5 files" in text and "pipelined, default engine" in text
    assert "speed-up:" in text
