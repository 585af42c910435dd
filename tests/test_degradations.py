"""The upload degradations of ``train.degradations`` on a real face crop (scikit-image's astronaut)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from deepfake_space.synth import ASTRONAUT_FACE_BOX, astronaut
from train import degradations as dg

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    x0, y0, x1, y1 = ASTRONAUT_FACE_BOX
    return np.ascontiguousarray(astronaut()[y0:y1, x0:x1])  # 180 x 160, not resampled: all its detail is there


def _mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _high_frequency_energy(img: np.ndarray) -> float:
    """Variance of the grey image's Laplacian: the energy of its finest detail."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


OPS = {
    "jpeg": lambda img, rng: dg.jpeg(img, 50),
    "h264": lambda img, rng: dg.h264(img, 28),
    "rescale": lambda img, rng: dg.rescale(img, 0.3),
    "blur": lambda img, rng: dg.blur(img, 1.2),
    "gaussian_noise": lambda img, rng: dg.gaussian_noise(img, 6, rng),
    "sensor_noise": lambda img, rng: dg.sensor_noise(img, rng),
    "gamma": lambda img, rng: dg.gamma(img, 1.3),
    "contrast": lambda img, rng: dg.contrast(img, 0.8),
    "sharpen": lambda img, rng: dg.sharpen(img, 1.0),
    "smooth_skin": lambda img, rng: dg.smooth_skin(img, 0.8),
    "mirror": lambda img, rng: dg.mirror(img),
}


@pytest.mark.parametrize("op", [*OPS.values(), *dg.ROBUSTNESS_SUITE.values()],
                         ids=[*OPS, *(f"suite-{name}" for name in dg.ROBUSTNESS_SUITE)])
def test_every_op_keeps_shape_and_dtype_and_leaves_its_input_alone(face, op):
    before = face.copy()
    out = op(face, np.random.default_rng(0))
    assert out.shape == face.shape and out.dtype == np.uint8
    assert np.array_equal(face, before)


@pytest.mark.parametrize("name", [n for n in OPS if n != "mirror"])
def test_every_op_changes_the_image_but_keeps_it_recognisable(face, name):
    error = _mean_abs_error(OPS[name](face, np.random.default_rng(0)), face)
    assert 0.3 < error < 30, error


def test_lower_jpeg_quality_loses_more(face):
    assert _mean_abs_error(dg.jpeg(face, 30), face) > 1.3 * _mean_abs_error(dg.jpeg(face, 90), face)


def test_higher_crf_loses_more(face):
    assert _mean_abs_error(dg.h264(face, 35), face) > 1.3 * _mean_abs_error(dg.h264(face, 23), face)


def test_rescale_loses_high_frequencies_but_not_the_mean(face):
    small = dg.rescale(face, 1 / 4)
    assert _high_frequency_energy(small) < 0.3 * _high_frequency_energy(face)
    assert abs(float(small.mean()) - float(face.mean())) < 2


def test_mirror_flips_and_twice_is_identity(face):
    assert np.array_equal(dg.mirror(face)[:, 0], face[:, -1])
    assert np.array_equal(dg.mirror(dg.mirror(face)), face)


def test_h264_round_trips_an_odd_sized_image(face):
    odd = np.ascontiguousarray(face[:61, :47])
    out = dg.h264(odd, 23)
    assert out.shape == odd.shape and out.dtype == np.uint8
    assert _mean_abs_error(out, odd) < 6
    assert np.array_equal(dg.h264(odd, 23), out)  # deterministic given the CRF


@pytest.mark.parametrize("noise", [lambda img, rng: dg.gaussian_noise(img, 5, rng),
                                   lambda img, rng: dg.sensor_noise(img, rng)], ids=["gaussian", "sensor"])
def test_noise_is_reproducible_for_a_seed(face, noise):
    a = noise(face, np.random.default_rng(7))
    assert np.array_equal(a, noise(face, np.random.default_rng(7)))
    assert not np.array_equal(a, noise(face, np.random.default_rng(8)))


def test_sensor_noise_depends_on_the_signal():
    """Shot noise: brighter linear signal, larger variance in linear light; read noise alone is flat."""
    rng = np.random.default_rng(0)
    levels = [np.full((64, 64, 3), v, np.uint8) for v in (40, 200)]
    linear_std = [np.square(dg.sensor_noise(img, rng, shot=0.004, read=0.0) / 255.0).std()
                  for img in levels]
    assert linear_std[1] > 2 * linear_std[0]


def test_gamma_and_contrast_move_the_tones_the_documented_way(face):
    assert dg.gamma(face, 1.5).mean() < face.mean() < dg.gamma(face, 0.7).mean()
    assert dg.contrast(face, 0.7).std() < face.std() < dg.contrast(face, 1.3).std()
    assert np.array_equal(dg.gamma(face, 1.0), face) and np.array_equal(dg.contrast(face, 1.0), face)


def test_sharpen_adds_detail(face):
    assert _high_frequency_energy(dg.sharpen(face, 1.0)) > 1.5 * _high_frequency_energy(face)


def test_smooth_skin_flattens_texture_but_keeps_edges():
    """Skin-toned texture (sigma 5 levels) on both sides of a dark-to-light edge."""
    img = np.full((96, 96, 3), (90, 60, 50), np.uint8)
    img[:, 48:] = (220, 170, 150)
    img = dg.gaussian_noise(img, 5, np.random.default_rng(0))
    out = dg.smooth_skin(img, 1.0)
    assert out[:, 8:40].std(axis=(0, 1)).max() < 0.5 * img[:, 8:40].std(axis=(0, 1)).min()
    step = out[:, 49].astype(int).mean(axis=0) - out[:, 46].astype(int).mean(axis=0)
    assert (step > 0.9 * np.array([130, 110, 100])).all()


def test_suite_is_ordered_and_described():
    assert list(dg.ROBUSTNESS_SUITE) == ["clean", "jpeg90", "jpeg60", "jpeg30", "scale1/2", "scale1/4", "blur",
                                         "noise4", "noise8", "gamma", "h264_crf23", "h264_crf35", "mirror"]
    assert list(dg.SUITE_DESCRIPTIONS) == list(dg.ROBUSTNESS_SUITE)


def test_suite_noise_depends_only_on_the_generator(face):
    noise = dg.ROBUSTNESS_SUITE["noise8"]
    assert np.array_equal(noise(face, np.random.default_rng(3)), noise(face, np.random.default_rng(3)))
    assert np.array_equal(dg.ROBUSTNESS_SUITE["clean"](face, np.random.default_rng(3)), face)


def test_random_degradation_on_a_tensor_is_uint8_chw_and_reproducible(face):
    x = torch.from_numpy(face).permute(2, 0, 1)
    outs = [[dg.RandomDegradation(seed=seed)(x) for _ in range(8)] for seed in (0, 0, 1)]
    for out in outs[0]:
        assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.shape == x.shape
    assert all(torch.equal(a, b) for a, b in zip(outs[0], outs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(outs[0], outs[2]))
    assert sum(not torch.equal(out, x) for out in outs[0]) >= 4  # most chains change something


def test_random_degradation_on_an_array_matches_the_tensor_path(face):
    x = torch.from_numpy(face).permute(2, 0, 1)
    out = dg.RandomDegradation(seed=5)(face)
    assert isinstance(out, np.ndarray) and out.shape == face.shape and out.dtype == np.uint8
    assert np.array_equal(dg.RandomDegradation(seed=5)(x).permute(1, 2, 0).numpy(), out)


def test_random_degradation_sits_in_a_v2_compose_before_to_dtype(face):
    pipeline = v2.Compose([v2.ToImage(), dg.RandomDegradation(seed=0), v2.ToDtype(torch.float32, scale=True)])
    out = pipeline(face)
    assert isinstance(out, tv_tensors.Image) and out.dtype == torch.float32 and out.shape == (3, *face.shape[:2])
    with pytest.raises(TypeError, match="uint8"):
        dg.RandomDegradation(seed=0)(torch.rand(3, 8, 8))


def test_strength_zero_is_the_identity_and_probabilities_override(face):
    assert np.array_equal(dg.RandomDegradation(strength=0.0, seed=0)(face), face)
    only_jpeg = {name: 0.0 for name in dg.CHAIN} | {"jpeg": 1.0}
    rd = dg.RandomDegradation(seed=0, probabilities=only_jpeg)
    out = rd(face)
    assert not np.array_equal(out, face) and _mean_abs_error(out, face) < 8
    with pytest.raises(KeyError, match="nope"):
        dg.RandomDegradation(probabilities={"nope": 1.0})


def test_dataloader_workers_draw_different_chains(face):
    """Forked workers start with copies of one generator; each must reseed, or all draw the same chains."""

    class Repeat(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.degrade = dg.RandomDegradation(seed=0, probabilities={name: 0.0 for name in dg.CHAIN} | {
                "gaussian_noise": 1.0})

        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(self.degrade(face))

    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(Repeat(), batch_size=1, num_workers=2,
                                         multiprocessing_context="fork")
    first, second = list(loader)
    assert not torch.equal(first, second)


def test_bench_reports_both_pipelines():
    result = dg.bench(n=3, op_runs=1)
    assert result["plain_img_s"] > 0 and result["degraded_img_s"] > 0
    assert set(result["op_ms"]) == set(dg.CHAIN)
