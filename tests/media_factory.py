"""Synthesize test media (images in odd modes, videos in several codecs, broken files) with Pillow and PyAV.

Everything is generated, so the tests need no fixtures on disk and no ffmpeg binary.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage import data

# Where the astronaut's face is in skimage.data.astronaut() (512 x 512): the three detectors agree
# within a few pixels on about x 175-272, y 66-177.
ASTRONAUT_FACE = (175.0, 70.0, 270.0, 175.0)
# A crop around that face, pasted into synthetic video frames.
FACE_PATCH = (140, 30, 300, 210)
MARKER = (255, 0, 0)
_CODEC_BY_SUFFIX = {".mp4": "libx264", ".webm": "libvpx-vp9", ".avi": "mjpeg", ".mkv": "libx264",
                    ".h264": "libx264"}


def astronaut_image() -> np.ndarray:
    """512 x 512 RGB photo with one real, frontal face."""
    return data.astronaut()


def write_image(path: Path, mode: str = "RGB") -> Path:
    """Astronaut saved in ``mode``: RGB, L, CMYK, I;16 (a grey ramp), P, RGBA, LA, or "exif_rotated".

    RGBA and LA are fully transparent on their left half.

    "exif_rotated" stores a 512 x 320 JPEG with a red marker at its stored top-left corner and EXIF
    orientation 6 (display = rotate 90 degrees clockwise), so upright it is 320 wide, 512 tall and the
    marker sits at the top-right.
    """
    rgb = astronaut_image()
    if mode == "exif_rotated":
        stored = rgb[:320].copy()
        stored[:40, :40] = MARKER
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(stored).save(path, format="JPEG", quality=95, exif=exif)
        return path
    image = Image.fromarray(rgb)
    if mode == "I;16":
        ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (64, 1))
        image = Image.fromarray(ramp)
    elif mode in ("RGBA", "LA"):
        alpha = np.where(np.arange(512) < 256, 0, 255).astype(np.uint8)[None, :].repeat(512, axis=0)
        image.putalpha(Image.fromarray(alpha))
        image = image.convert(mode)
    elif mode == "P":
        image = image.quantize(64)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, format="TIFF" if mode == "CMYK" else None)
    return path


def write_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` but has no pixel data: decoding it would be a bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def video_frame(i: int, size: tuple[int, int], face: bool) -> np.ndarray:
    """Frame ``i``: a gradient that shifts every frame, the astronaut's face drifting right, a red corner marker."""
    width, height = size
    y, x = np.mgrid[:height, :width]
    x = x + 3 * i
    frame = np.stack([(x + y) % 256, (2 * x) % 256, (y + 5 * i) % 256], axis=2).astype(np.uint8)
    if face:
        x0, y0, x1, y1 = FACE_PATCH
        patch = astronaut_image()[y0:y1, x0:x1]
        scale = min(1.0, 0.8 * height / patch.shape[0], 0.6 * width / patch.shape[1])
        patch = np.asarray(Image.fromarray(patch).resize((int(patch.shape[1] * scale), int(patch.shape[0] * scale))))
        left = min(width - patch.shape[1], width // 4 + 2 * (i % 20))
        top = (height - patch.shape[0]) // 2
        frame[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    frame[:max(2, height // 10), :max(2, width // 10)] = MARKER
    return frame


def write_video(path: Path, codec: str | None = None, frames: int = 24, fps: int = 12,
                size: tuple[int, int] = (320, 240), rotation: int | None = None, face: bool = True,
                gop: int | None = None, vfr: bool = False) -> Path:
    """Encode ``frames`` frames with PyAV; container from the suffix, codec from the suffix unless given.

    ``size`` is the displayed (width, height). ``rotation`` (degrees counter-clockwise, as PyAV reads
    it back) writes a display matrix and stores the frames turned the other way, like a phone video:
    only a reader that applies the matrix sees them upright. ``vfr`` gives frames irregular durations.
    """
    codec = codec or _CODEC_BY_SUFFIX[path.suffix]
    quarter_turns = (rotation or 0) // 90
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size[::-1] if quarter_turns % 2 else size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast"}
        elif codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        if gop:
            stream.codec_context.gop_size = gop
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        container.start_encoding()
        t_ms = 0
        for i in range(frames):
            stored = np.ascontiguousarray(np.rot90(video_frame(i, size, face), -quarter_turns))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            if vfr:
                frame.pts, frame.time_base = t_ms, Fraction(1, 1000)
                t_ms += 1000 // fps * (1 + i % 3)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path) -> Path:
    """An .m4a with one AAC track and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def write_ffmpeg_only_image(path: Path) -> Path:
    """A DPX still: FFmpeg reads it, Pillow does not."""
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("dpx", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 100, np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def truncate(src: Path, dst: Path, keep: float) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes: an interrupted upload."""
    raw = src.read_bytes()
    dst.write_bytes(raw[:int(len(raw) * keep)])
    return dst


def build_media_set(root: Path) -> dict[str, Path]:
    """Every test file, made once: name -> path."""
    files = {f"image_{m.replace(';', '')}": write_image(root / f"image_{m.replace(';', '')}.{ext}", m)
             for m, ext in [("RGB", "jpg"), ("L", "png"), ("CMYK", "tif"), ("I;16", "png"), ("P", "png"),
                            ("RGBA", "png"), ("LA", "png"), ("exif_rotated", "jpg")]}
    files.update(
        h264=write_video(root / "h264.mp4"),
        vp9=write_video(root / "vp9.webm"),
        mjpeg=write_video(root / "mjpeg.avi"),
        short=write_video(root / "short.mp4", frames=5),
        one_frame=write_video(root / "one_frame.mp4", frames=1),
        rotated=write_video(root / "rotated.mp4", frames=6, size=(240, 320), rotation=90),
        vfr=write_video(root / "vfr.mkv", frames=30, vfr=True),
        raw_h264=write_video(root / "raw.h264", frames=30),
        long=write_video(root / "long.mp4", frames=250, fps=25, size=(96, 64), face=False, gop=25),
        webm_long=write_video(root / "webm_long.webm", frames=60, size=(160, 120), face=False),
        zero_frames=write_video(root / "zero_frames.avi", frames=0),
        no_streams=write_video(root / "no_streams.mp4", frames=0),
        audio_only=write_audio_only(root / "audio_only.m4a"),
        dpx=write_ffmpeg_only_image(root / "still.dpx"),
        huge_png=write_png_header(root / "huge.png", 100_000, 100_000),
        big_png=write_png_header(root / "big.png", 8_000, 8_000),
    )
    files["truncated_mp4"] = truncate(files["h264"], root / "truncated.mp4", 0.5)
    files["truncated_webm"] = truncate(files["webm_long"], root / "truncated.webm", 0.5)
    files["text_mp4"] = root / "notes.mp4"
    files["text_mp4"].write_text("this is not a video\n" * 20)
    files["empty"] = root / "empty.mp4"
    files["empty"].write_bytes(b"")
    return files
