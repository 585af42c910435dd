"""Degradations matched to what people upload: recompression, resizing, blur, noise, tone curves, filters.

A detector trained on clean DFDC crops meets faces that went through a phone camera, a beauty filter, a
messenger's JPEG and a platform's H.264 before anyone asks about them. Every operation here takes and returns an
RGB uint8 H x W x 3 array and is deterministic given its parameters (the noises given their generator), so
``ROBUSTNESS_SUITE`` degrades the same crops the same way on every run (``train.robustness``), while
``RandomDegradation`` draws random chains of them as a training augmentation.

    python -m train.degradations --bench    # CPU cost of the training pipeline with and without it
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm.auto import tqdm

from deepfake_space.timing import median_seconds
from deepfake_space.transforms import build_train_transform

H264_PRESET = "veryfast"  # keeps CABAC and deblocking, as phone and platform encoders do; ultrafast drops both
_LEVELS = np.arange(256, dtype=np.float64) / 255


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Re-save as a JPEG of ``quality`` with 4:2:0 chroma, as cameras, messengers and social networks save."""
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def h264(img: np.ndarray, crf: float) -> np.ndarray:
    """Encode a two-frame H.264 clip of the image (libx264, yuv420p, constant rate factor ``crf``) in memory and
    decode its last frame.

    The second frame is a P-frame, as most frames of an uploaded video are, but of a still image x264 codes it as a
    copy of the I-frame: this is the loss of one intra-coded frame at ``crf``, a little less than moving video
    loses. A codec context rather than a container: the output is the same, the muxing is not needed. One
    x264 thread, so the result does not depend on the machine's core count. yuv420p needs even sides: odd ones are
    padded by repeating the edge and cropped back. PyAV is imported here, not with the module: the GPU machine
    trains without it (``--degrade-off h264``, docs/gpu_training.md)."""
    import av

    h, w = img.shape[:2]
    even = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = even.shape[1], even.shape[0], "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"crf": f"{crf:g}", "preset": H264_PRESET, "tune": "zerolatency", "threads": "1"}
    packets = []
    for pts in range(2):
        frame = av.VideoFrame.from_ndarray(even, format="rgb24")
        frame.pts = pts
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for packet in packets for f in decoder.decode(packet)] + list(decoder.decode(None))
    return np.ascontiguousarray(frames[-1].to_ndarray(format="rgb24")[:h, :w])


def rescale(img: np.ndarray, factor: float) -> np.ndarray:
    """Shrink by ``factor`` (area averaging, as a platform's downsizing does) and enlarge back bilinearly: the detail
    of a small face in a low-resolution upload is lost, its size in pixels is not."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels: defocus, camera shake, a platform's smoothing."""
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0 else img


def gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Independent Gaussian noise of ``sigma`` grey levels on every pixel and channel (film-grain filters, noisy
    transcoders), rounded and clipped."""
    return _to_uint8(img + sigma * rng.standard_normal(img.shape, dtype=np.float32))


def sensor_noise(img: np.ndarray, rng: np.random.Generator, shot: float = 0.002, read: float = 0.003) -> np.ndarray:
    """Signal-dependent camera noise: Poisson shot noise plus Gaussian read noise, added in linear light.

    The variance is ``shot * x + read ** 2`` at linear intensity x in [0, 1] (the Gaussian approximation of the
    Poisson-Gaussian sensor model), so shadows get the coarse noise of a small sensor in dim light, which an additive
    Gaussian in sRGB does not give. sRGB is approximated by a square root (gamma 2): cheap, and it makes shot noise
    as flat across levels as the true curve nearly does. The defaults add about 6 grey levels at mid-grey and 7 in
    the shadows."""
    linear = np.square(_LEVELS).astype(np.float32)[img]
    noisy = linear + np.sqrt(shot * linear + read ** 2) * rng.standard_normal(img.shape, dtype=np.float32)
    return _to_uint8(255 * np.sqrt(np.clip(noisy, 0, 1)))


def gamma(img: np.ndarray, g: float) -> np.ndarray:
    """Tone curve out = in ** ``g`` on [0, 1]: g > 1 darkens the mid-tones (under-exposure), g < 1 brightens them."""
    return _to_uint8(255 * _LEVELS ** g)[img]


def contrast(img: np.ndarray, c: float) -> np.ndarray:
    """Scale every level's distance from the image's mean grey by ``c`` (as PIL's ImageEnhance.Contrast): c < 1
    flattens, c > 1 punches."""
    mean = float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean())
    return _to_uint8(mean + c * (255 * _LEVELS - mean))[img]


def sharpen(img: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask: add ``amount`` times the detail that a ``sigma`` px blur removes. Phone cameras and editing apps
    over-sharpen, leaving halos at edges."""
    return cv2.addWeighted(img, 1 + amount, cv2.GaussianBlur(img, (0, 0), sigma), -amount, 0)


def smooth_skin(img: np.ndarray, strength: float) -> np.ndarray:
    """A beauty filter: an edge-preserving bilateral filter blended in with weight ``strength`` in [0, 1] flattens
    skin texture (pores, fine wrinkles, blending seams) and keeps the eyes, mouth and outline sharp. Two passes of a
    5 px filter: on a 224 px crop as smooth as one 7 px pass, at half the cost."""
    smooth = cv2.bilateralFilter(cv2.bilateralFilter(img, 5, 30, 2), 5, 30, 2)
    return cv2.addWeighted(img, 1 - strength, smooth, strength, 0)


def mirror(img: np.ndarray) -> np.ndarray:
    """Left-right flip, as front cameras save selfies."""
    return np.ascontiguousarray(img[:, ::-1])


@dataclass(frozen=True)
class _Step:
    """One operation of the random chain, applied with probability ``p`` to a parameter drawn from ``low``..``high``;
    below strength 1 the range shrinks towards ``neutral`` (the parameter that changes nothing)."""

    p: float
    low: float
    high: float
    neutral: float
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

    def draw(self, rng: np.random.Generator, harshness: float) -> float:
        return rng.uniform(self.neutral + (self.low - self.neutral) * harshness,
                           self.neutral + (self.high - self.neutral) * harshness)


# In the order a face meets them: the camera, processing and filters, then the platform's resizing and codecs.
# No mirror: the training transforms already flip at random.
CHAIN: dict[str, _Step] = {
    "blur": _Step(0.15, 0.0, 2.0, 0.0, lambda img, v, rng: blur(img, v)),
    "sensor_noise": _Step(0.2, 0.0, 2.0, 0.0, lambda img, v, rng: sensor_noise(img, rng, 0.002 * v, 0.003 * v)),
    "gamma": _Step(0.3, 0.7, 1.4, 1.0, lambda img, v, rng: gamma(img, v)),
    "contrast": _Step(0.3, 0.7, 1.3, 1.0, lambda img, v, rng: contrast(img, v)),
    "sharpen": _Step(0.15, 0.0, 1.5, 0.0, lambda img, v, rng: sharpen(img, v)),
    "smooth_skin": _Step(0.15, 0.0, 1.0, 0.0, lambda img, v, rng: smooth_skin(img, v)),
    "gaussian_noise": _Step(0.15, 0.0, 10.0, 0.0, lambda img, v, rng: gaussian_noise(img, v, rng)),
    "rescale": _Step(0.3, 0.25, 1.0, 1.0, lambda img, v, rng: rescale(img, v)),
    "h264": _Step(0.1, 18.0, 38.0, 18.0, lambda img, v, rng: h264(img, round(v))),
    "jpeg": _Step(0.4, 30.0, 95.0, 95.0, lambda img, v, rng: jpeg(img, round(v))),
}


class RandomDegradation:
    """A training augmentation: a random chain of ``CHAIN``'s upload degradations, from a generator it owns.

    Each operation applies with its own probability times ``strength`` (capped at 1); below strength 1 the parameter
    ranges also shrink towards no change, so strength 0 is the identity. ``probabilities`` overrides single
    operations' probabilities (e.g. ``{"h264": 0.0}``). Takes an RGB uint8 H x W x 3 array or a uint8 C x H x W
    tensor (a torchvision ``Image`` stays one), so it can sit in a v2 ``Compose`` before ``ToDtype``."""

    def __init__(self, strength: float = 1.0, seed: int | None = None,
                 probabilities: dict[str, float] | None = None) -> None:
        unknown = set(probabilities or {}) - set(CHAIN)
        if unknown:
            raise KeyError(f"no degradations {sorted(unknown)}; the chain has {list(CHAIN)}")
        self.strength = strength
        self.probabilities = {name: step.p for name, step in CHAIN.items()} | (probabilities or {})
        self._entropy = np.random.SeedSequence(seed).entropy
        self.rng = np.random.default_rng(self._entropy)
        self._worker_seed: int | None = None

    def __call__(self, img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if not isinstance(img, torch.Tensor):
            return self.degrade(img)
        if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
            raise TypeError(f"expected a uint8 3 x H x W tensor, got {img.dtype} of shape {tuple(img.shape)}")
        out = torch.from_numpy(self.degrade(np.ascontiguousarray(img.permute(1, 2, 0).numpy()))).permute(2, 0, 1)
        return tv_tensors.wrap(out, like=img) if isinstance(img, tv_tensors.TVTensor) else out

    def degrade(self, img: np.ndarray) -> np.ndarray:
        """One random chain applied to an RGB uint8 H x W x 3 array."""
        rng = self._generator()
        harshness = min(1.0, self.strength)
        for name, step in CHAIN.items():
            if rng.random() < min(1.0, self.probabilities[name] * self.strength):
                img = step.apply(img, step.draw(rng, harshness), rng)
        return img

    def _generator(self) -> np.random.Generator:
        """This process's generator. DataLoader workers start with copies of the parent's and would all draw the same
        chains, so each reseeds from its torch worker seed, which follows torch's own seed."""
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self.rng = np.random.default_rng([self._entropy, info.seed])
        return self.rng


SuiteOp = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# The fixed evaluation suite (train.robustness). rng feeds the noises only; the rest ignore it.
ROBUSTNESS_SUITE: dict[str, SuiteOp] = {
    "clean": lambda img, rng: img,
    "jpeg90": lambda img, rng: jpeg(img, 90),
    "jpeg60": lambda img, rng: jpeg(img, 60),
    "jpeg30": lambda img, rng: jpeg(img, 30),
    "scale1/2": lambda img, rng: rescale(img, 1 / 2),
    "scale1/4": lambda img, rng: rescale(img, 1 / 4),
    "blur": lambda img, rng: blur(img, 1.5),
    "noise4": lambda img, rng: gaussian_noise(img, 4, rng),
    "noise8": lambda img, rng: gaussian_noise(img, 8, rng),
    "gamma": lambda img, rng: gamma(img, 1.5),
    "h264_crf23": lambda img, rng: h264(img, 23),
    "h264_crf35": lambda img, rng: h264(img, 35),
    "mirror": lambda img, rng: mirror(img),
}

SUITE_DESCRIPTIONS: dict[str, str] = {
    "clean": "the crop as stored",
    "jpeg90": "JPEG quality 90",
    "jpeg60": "JPEG quality 60",
    "jpeg30": "JPEG quality 30",
    "scale1/2": "downscaled to 1/2 and back up",
    "scale1/4": "downscaled to 1/4 and back up",
    "blur": "Gaussian blur, sigma 1.5 px",
    "noise4": "Gaussian noise, sigma 4 levels",
    "noise8": "Gaussian noise, sigma 8 levels",
    "gamma": "gamma 1.5 (darker; training draws 0.7-1.4)",
    "h264_crf23": f"H.264 CRF 23 (x264 default), {H264_PRESET}",
    "h264_crf35": f"H.264 CRF 35, {H264_PRESET}",
    "mirror": "horizontal flip",
}


def _face_crop(size: int = 224) -> np.ndarray:
    """A real face (scikit-image's astronaut) framed like a DFDC crop."""
    from deepfake_space.synth import ASTRONAUT_FACE_BOX, astronaut

    x0, y0, x1, y1 = ASTRONAUT_FACE_BOX
    return cv2.resize(astronaut()[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def _images_per_second(pipeline: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, n: int,
                       desc: str) -> float:
    pipeline(image)  # warm-up: first calls load codecs and allocate
    start = time.perf_counter()
    for _ in tqdm(range(n), desc=desc, leave=False):
        pipeline(image)
    return n / (time.perf_counter() - start)


def bench(n: int = 300, strength: float = 1.0, threads: int = 1, op_runs: int = 20) -> dict:
    """Images/s of a 224 px face crop (a uint8 tensor, as ``TorchImageDataset`` yields) through the teacher's
    ``build_train_transform``, without and with ``RandomDegradation`` in front, and ms per call of each chain
    operation at the middle of its range, on ``threads`` CPU threads (a DataLoader worker's share)."""
    from deepfake_space.models import default_config  # imports every architecture: only the bench needs one

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    crop = _face_crop()
    image = torch.from_numpy(crop).permute(2, 0, 1)
    rng = np.random.default_rng(0)
    op_ms = {name: 1000 * median_seconds(lambda s=step: s.apply(crop, (s.low + s.high) / 2, rng), op_runs, warmup=2)
             for name, step in CHAIN.items()}
    train = build_train_transform(default_config("efficientnet_lite0"))
    degraded = v2.Compose([RandomDegradation(strength, seed=0), train])
    return {"n": n, "strength": strength, "threads": threads, "op_ms": op_ms,
            "plain_img_s": _images_per_second(train, image, n, "train transform"),
            "degraded_img_s": _images_per_second(degraded, image, n, "with RandomDegradation")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", action="store_true", help="measure the CPU cost of RandomDegradation")
    p.add_argument("--n", type=int, default=300, help="images per timed pipeline")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    args = p.parse_args(argv)
    if not args.bench:
        p.error("nothing to do: pass --bench")
    result = bench(args.n, args.strength, args.threads)
    print(f"ms per call on a 224 px crop ({args.threads} thread(s), parameter at mid-range; p = probability in chain)")
    for name, ms in result["op_ms"].items():
        print(f"  {name:<15} {ms:7.2f} ms  p={CHAIN[name].p:.2f}")
    print(f"build_train_transform                        {result['plain_img_s']:8.1f} images/s")
    print(f"RandomDegradation(strength {args.strength:g}) + build_train_transform {result['degraded_img_s']:8.1f} images/s")


if __name__ == "__main__":
    main()
