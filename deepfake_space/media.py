"""Image and video decoding: any upload -> a few RGB frames, or a typed error the user can read.

Images go through Pillow (EXIF orientation, odd modes, decompression-bomb guard); everything else
through PyAV, which reads any container/codec FFmpeg does. Videos are sampled by *seeking* to N
uniformly spaced timestamps, so a ten-minute upload costs about as much as a ten-second one.
"""

from __future__ import annotations

import bisect
import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfake_space.errors import (CorruptMediaError, EmptyMediaError, MediaError, MediaTooLargeError,
                                   MediaTooLongError, UnsupportedMediaError)

logger = logging.getLogger(__name__)

DEFAULT_NUM_FRAMES = 16
# What the upload box and `batch` take by name; decoding itself goes by content (``load_media``).
MEDIA_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                            ".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v", ".mpg", ".mpeg"})
MAX_DURATION_S = 600.0
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 500 * 1024 * 1024

# Pillow formats that hold photos and that Pillow really decodes (no identify-only stubs such as
# MPEG/BUFR, no Ghostscript-backed EPS): anything else is handed to FFmpeg.
IMAGE_FORMATS = ("AVIF", "BMP", "DIB", "GIF", "ICO", "JPEG", "JPEG2000", "PCX", "PNG", "PPM", "PSD", "QOI", "SGI",
                 "TGA", "TIFF", "WEBP")
# Without a container index, seek only when the next sample is this far ahead: closer than a typical
# keyframe interval, decoding forward is cheaper than seeking back to the previous keyframe.
SEEK_GAP_S = 2.0
# A stream of unknown duration is read sequentially once; this bounds that pass.
MAX_SEQUENTIAL_FRAMES = 5000
# Leading bytes of video containers: a file that starts like one but will not open is damaged, not unsupported.
_VIDEO_SIGNATURES = ((0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"OggS"), (0, b"FLV"), (0, b"\x00\x00\x01\xba"),
                     (0, b"\x30\x26\xb2\x75"), (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"))
_EXIF_ERRORS = (OSError, ValueError, TypeError, KeyError, SyntaxError, struct.error)
_PIL_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


@dataclass
class Frame:
    """One decoded frame, as displayed (rotation applied)."""

    image: np.ndarray
    index: int
    timestamp: float


@dataclass
class Media:
    """A decoded upload: one frame for an image, N uniformly sampled frames for a video."""

    path: str
    kind: str
    frames: list[Frame]
    width: int
    height: int
    duration: float | None
    fps: float | None
    decode_ms: float


def load_media(path: str | Path, num_frames: int = DEFAULT_NUM_FRAMES, max_duration: float = MAX_DURATION_S,
               max_pixels: int = MAX_PIXELS) -> Media:
    """Decode an upload by its content, not its extension: an image if Pillow knows it, else a video.

    An animated GIF/WebP/PNG counts as an image (its first frame): Pillow identifies it first.
    """
    start = time.perf_counter()
    path = _checked_file(path)
    image = _open_pillow(path)
    if image is None:
        return sample_video(path, num_frames, max_duration, max_pixels)
    with image:
        rgb = _decode_pillow(image, path, max_pixels)
    return _still_media(path, rgb, start)


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to H x W x 3 uint8 RGB, upright as its EXIF orientation says."""
    path = _checked_file(path)
    image = _open_pillow(path)
    if image is None:
        raise UnsupportedMediaError(f"'{path.name}' is not an image format that can be read")
    with image:
        return _decode_pillow(image, path, max_pixels)


def sample_video(path: str | Path, num_frames: int = DEFAULT_NUM_FRAMES, max_duration: float = MAX_DURATION_S,
                 max_pixels: int = MAX_PIXELS) -> Media:
    """Decode ``num_frames`` frames spread uniformly over the video (fewer if it has fewer distinct frames)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    start = time.perf_counter()
    path = _checked_file(path)
    container = _open_container(path)
    try:
        stream = _video_stream(container, path)
        _check_pixels(stream.codec_context.width, stream.codec_context.height, max_pixels, path)
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            return _still_media(path, _decode_still(_Decoder(container, stream, path), max_pixels), start)
        duration = _duration(container, stream)
        if duration is not None and duration > max_duration:
            raise MediaTooLongError(f"'{path.name}' lasts {duration:.0f} s; videos up to {max_duration:.0f} s "
                                    "are accepted")
        fps = float(stream.average_rate) if stream.average_rate else None
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        decoder = _Decoder(container, stream, path)
        if duration is None:
            picked = _sample_sequentially(decoder, num_frames, origin, fps, max_duration)
        else:
            targets = [origin + duration * i / num_frames for i in range(num_frames)]
            picked = _sample_by_seeking(decoder, targets, fps)
        if not picked and decoder.error is not None:
            raise decoder.error
        if not picked:
            raise EmptyMediaError(f"'{path.name}' contains no video frames")
        frames = [Frame(_to_rgb(frame, path, max_pixels), i, max(0.0, t - origin))
                  for i, (t, frame) in enumerate(picked)]
    except av.FFmpegError as e:
        raise CorruptMediaError(f"'{path.name}' could not be decoded ({e.strerror}): the file is damaged "
                                "or truncated") from e
    finally:
        container.close()
    height, width = frames[0].image.shape[:2]
    decode_ms = (time.perf_counter() - start) * 1000
    logger.debug("%s: %d frames sampled in %.0f ms", path.name, len(frames), decode_ms)
    return Media(str(path), "video", frames, width, height, duration, fps, decode_ms)


def _checked_file(path: str | Path) -> Path:
    """Reject what is not a readable, non-empty, reasonably sized file before any decoder sees it."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise MediaError(f"'{path.name}' was not found") from e
    except OSError as e:
        raise MediaError(f"'{path.name}' cannot be read: {e.strerror}") from e
    if not path.is_file():
        raise MediaError(f"'{path.name}' is not a file")
    if size == 0:
        raise EmptyMediaError(f"'{path.name}' is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise MediaTooLargeError(f"'{path.name}' is {size / 2**20:.0f} MiB; files up to "
                                 f"{MAX_FILE_BYTES / 2**20:.0f} MiB are accepted")
    return path


def _check_pixels(width: int, height: int, max_pixels: int, path: Path) -> None:
    if width * height > max_pixels:
        raise MediaTooLargeError(f"'{path.name}' is {width}x{height} pixels; at most {max_pixels / 1e6:g} "
                                 "megapixels are accepted")


def _still_media(path: Path, rgb: np.ndarray, start: float) -> Media:
    height, width = rgb.shape[:2]
    return Media(str(path), "image", [Frame(rgb, 0, 0.0)], width, height, None, None,
                 (time.perf_counter() - start) * 1000)


def _open_pillow(path: Path) -> Image.Image | None:
    """Pillow's header-only open: the image if Pillow decodes this format, None to try FFmpeg instead."""
    try:
        return Image.open(path, formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as e:
        raise MediaTooLargeError(f"'{path.name}' has too many pixels to decode safely ({e})") from e
    except OSError as e:
        raise MediaError(f"'{path.name}' cannot be read: {e}") from e


def _decode_pillow(image: Image.Image, path: Path, max_pixels: int) -> np.ndarray:
    """Size check on the header, then decode, upright by EXIF, then any mode -> RGB uint8."""
    _check_pixels(image.width, image.height, max_pixels, path)
    try:
        image.load()
    except Image.DecompressionBombError as e:
        raise MediaTooLargeError(f"'{path.name}' has too many pixels to decode safely ({e})") from e
    except _PIL_DECODE_ERRORS as e:
        raise CorruptMediaError(f"'{path.name}' could not be decoded ({e}): the image is damaged or "
                                "truncated") from e
    try:
        image = ImageOps.exif_transpose(image)
    except _EXIF_ERRORS as e:
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", path.name, e)
    return _pil_to_rgb(image, path)


def _pil_to_rgb(image: Image.Image, path: Path) -> np.ndarray:
    """Grey, palette, CMYK, 16/32-bit and float -> RGB; transparency is composited on white."""
    if image.mode.startswith("I") or image.mode == "F":
        grey = _high_depth_to_uint8(np.asarray(image))
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    try:
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, image.convert("RGBA"))
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except ValueError as e:
        raise UnsupportedMediaError(f"'{path.name}' uses the image mode {image.mode}, which cannot be "
                                    "converted to RGB") from e


def _high_depth_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit data keeps its full range (Pillow's own convert would clip everything above 255)."""
    is_float = values.dtype.kind == "f"
    values = np.nan_to_num(values.astype(np.float64))
    peak = float(values.max(initial=0.0))
    if is_float and peak <= 1.0:
        scale = 255.0
    elif peak <= 255:
        scale = 1.0
    elif peak <= 65535:
        scale = 255.0 / 65535.0
    else:
        scale = 255.0 / peak
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def _open_container(path: Path) -> av.container.InputContainer:
    """Open with PyAV; an unreadable file is 'damaged' if it starts like a video container, else 'unsupported'."""
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        with path.open("rb") as f:
            head = f.read(16)
        if any(head[at:at + len(sig)] == sig for at, sig in _VIDEO_SIGNATURES):
            raise CorruptMediaError(f"'{path.name}' looks like a video but cannot be opened ({e.strerror}): "
                                    "it is damaged or truncated") from e
        raise UnsupportedMediaError(f"'{path.name}' is not an image or video format that can be read") from e


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if container.streams.video:
        return container.streams.video[0]
    if container.streams.audio:
        raise UnsupportedMediaError(f"'{path.name}' has no video track (audio only)")
    raise EmptyMediaError(f"'{path.name}' contains no audio or video streams: it is empty or was cut off "
                          "before its index")


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Stream duration, else the container's, else frame count / rate; None when nothing says."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return stream.frames / float(stream.average_rate)
    return None


class _Decoder:
    """Decodes one video stream forward from the container's position; remembers a damaged stretch.

    A decoding error ends the frames with a warning instead of failing the file, so a truncated video
    keeps the frames it has; ``error`` then tells "damaged" apart from "no frames at all".
    """

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 path: Path) -> None:
        self.container, self.stream, self.path = container, stream, path
        self.error: av.FFmpegError | None = None

    def frames(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self.container.decode(self.stream)
        except av.FFmpegError as e:
            self.error = e
            logger.warning("%s: decoding stopped early (%s); keeping the frames read so far", self.path.name, e)


def _frame_time(frame: av.VideoFrame, stream: av.video.stream.VideoStream, fallback: float) -> float:
    if frame.pts is not None:
        return float(frame.pts * stream.time_base)
    if frame.dts is not None:
        return float(frame.dts * stream.time_base)
    return fallback


def _sample_by_seeking(decoder: _Decoder, targets: list[float], fps: float | None) -> list[tuple[float, av.VideoFrame]]:
    """For each target time, the first frame at/after it (within half a frame), distinct and in order.

    Seeks to the keyframe before a target only when that skips work: when the index shows a keyframe
    between the current position and the target, or (no index) when the target is far ahead.
    """
    container, stream = decoder.container, decoder.stream
    interval = 1.0 / fps if fps else 0.02
    keyframes = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe)
    picked: list[tuple[float, av.VideoFrame]] = []
    frames = decoder.frames()
    position: float | None = None
    can_seek = True
    for target in targets:
        if position is not None and position >= target - interval / 2:
            continue
        if can_seek and position is not None and _worth_seeking(position, target, keyframes, stream):
            try:
                container.seek(int(target / stream.time_base), stream=stream)
                frames = decoder.frames()
            except av.FFmpegError as e:
                logger.warning("%s: seeking failed (%s); decoding forward instead", decoder.path.name, e)
                can_seek = False
        for frame in frames:
            position = _frame_time(frame, stream, (position or 0.0) + interval)
            if position >= target - interval / 2:
                picked.append((position, frame))
                break
        else:
            if position is not None and target - position > 2 * interval:
                logger.warning("%s: the video stops at %.2f s, before the duration its header declares; "
                               "it is probably truncated", decoder.path.name, position)
            break
    return picked


def _worth_seeking(position: float, target: float, keyframes: list[int], stream: av.video.stream.VideoStream) -> bool:
    if not keyframes:
        return target - position > SEEK_GAP_S
    before_target = bisect.bisect_right(keyframes, int(target / stream.time_base))
    return before_target > 0 and keyframes[before_target - 1] > int(position / stream.time_base)


def _sample_sequentially(decoder: _Decoder, num_frames: int, origin: float, fps: float | None,
                         max_duration: float) -> list[tuple[float, av.VideoFrame]]:
    """Duration unknown: one bounded pass that keeps an evenly thinned subset (at most 2N frames held)."""
    interval = 1.0 / fps if fps else 0.04
    kept: list[tuple[float, av.VideoFrame]] = []
    stride = 1
    for i, frame in enumerate(decoder.frames()):
        if i >= MAX_SEQUENTIAL_FRAMES:
            logger.warning("%s: no duration known; sampled only the first %d frames", decoder.path.name, i)
            break
        t = _frame_time(frame, decoder.stream, origin + i * interval)
        if t - origin > max_duration:
            raise MediaTooLongError(f"'{decoder.path.name}' lasts more than {max_duration:.0f} s; videos up to "
                                    f"{max_duration:.0f} s are accepted")
        if i % stride == 0:
            kept.append((t, frame))
            if len(kept) == 2 * num_frames:
                kept, stride = kept[::2], stride * 2
    if len(kept) <= num_frames:
        return kept
    return [kept[int(i)] for i in np.unique(np.linspace(0, len(kept) - 1, num_frames).round())]


def _decode_still(decoder: _Decoder, max_pixels: int) -> np.ndarray:
    """An image format only FFmpeg reads (its *_pipe demuxers): the one frame there is."""
    for frame in decoder.frames():
        return _to_rgb(frame, decoder.path, max_pixels)
    raise CorruptMediaError(f"'{decoder.path.name}' could not be decoded: the image is damaged or truncated")


def _to_rgb(frame: av.VideoFrame, path: Path, max_pixels: int) -> np.ndarray:
    """RGB uint8, turned upright by the display matrix (``frame.rotation``: degrees counter-clockwise)."""
    _check_pixels(frame.width, frame.height, max_pixels, path)
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb
