"""Decoding: every image mode and video codec to upright RGB frames; every bad file to its typed error."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from deepfake_space import media
from deepfake_space.errors import (CorruptMediaError, EmptyMediaError, MediaError, MediaTooLargeError,
                                   MediaTooLongError, UnsupportedMediaError)
from deepfake_space.media import load_image, load_media, sample_video
from media_factory import MARKER

IMAGE_SHAPES = {"image_RGB": (512, 512), "image_L": (512, 512), "image_CMYK": (512, 512), "image_I16": (64, 256),
                "image_P": (512, 512), "image_RGBA": (512, 512), "image_LA": (512, 512),
                "image_exif_rotated": (512, 320)}


def is_red(pixel: np.ndarray) -> bool:
    """The factory's corner marker, give or take compression."""
    return bool(np.abs(pixel.astype(int) - np.array(MARKER)).max() < 60)


@pytest.mark.parametrize("name", sorted(IMAGE_SHAPES))
def test_every_image_mode_becomes_rgb_uint8(media_files, name):
    m = load_media(media_files[name])
    assert m.kind == "image" and len(m.frames) == 1 and m.duration is None and m.fps is None
    image = m.frames[0].image
    assert image.dtype == np.uint8 and image.shape == (*IMAGE_SHAPES[name], 3)
    assert (m.height, m.width) == IMAGE_SHAPES[name] and m.frames[0].timestamp == 0.0
    assert np.array_equal(load_image(media_files[name]), image)


def test_sixteen_bit_keeps_its_full_range(media_files):
    ramp = load_image(media_files["image_I16"])[0, :, 0]
    assert ramp[0] == 0 and ramp[-1] == 255 and np.all(np.diff(ramp.astype(int)) >= 0)


def test_transparency_is_composited_on_white(media_files):
    for name in ("image_RGBA", "image_LA"):
        image = load_image(media_files[name])
        assert np.all(image[:, :256] == 255), name
        assert image[:, 256:].mean() < 200, name


def test_exif_orientation_is_applied(media_files):
    image = load_image(media_files["image_exif_rotated"])
    assert image.shape == (512, 320, 3)
    assert is_red(image[10, -10]) and not is_red(image[10, 10])


@pytest.mark.parametrize("name", ["h264", "vp9", "mjpeg"])
def test_video_sampling_returns_sorted_uniform_frames(media_files, name):
    m = load_media(media_files[name], num_frames=8)
    assert m.kind == "video" and (m.width, m.height) == (320, 240)
    assert m.duration == pytest.approx(2.0, abs=0.1) and m.fps == pytest.approx(12.0)
    assert [f.index for f in m.frames] == list(range(8))
    times = [f.timestamp for f in m.frames]
    assert times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:]))
    assert times == pytest.approx([i * m.duration / 8 for i in range(8)], abs=1 / 12)
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in m.frames)
    assert m.decode_ms > 0


def test_default_number_of_frames(media_files):
    assert len(load_media(media_files["h264"]).frames) == media.DEFAULT_NUM_FRAMES


def test_fewer_frames_than_requested_gives_distinct_frames(media_files):
    m = sample_video(media_files["short"], num_frames=16)
    assert len(m.frames) == 5
    assert len({f.timestamp for f in m.frames}) == 5
    assert len({f.image.tobytes() for f in m.frames}) == 5


def test_one_frame_video(media_files):
    m = load_media(media_files["one_frame"])
    assert m.kind == "video" and len(m.frames) == 1 and m.frames[0].timestamp == 0.0


def test_rotated_video_comes_out_upright(media_files):
    with av.open(str(media_files["rotated"])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (320, 240)
    m = load_media(media_files["rotated"])
    assert (m.width, m.height) == (240, 320) and len(m.frames) == 6
    image = m.frames[0].image
    assert image.shape == (320, 240, 3)
    assert is_red(image[5, 5]) and not is_red(image[-5, 5]) and not is_red(image[5, -5])


def test_variable_frame_rate_video(media_files):
    m = load_media(media_files["vfr"], num_frames=10)
    times = [f.timestamp for f in m.frames]
    assert len(times) == 10 and all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] < m.duration


def test_unknown_duration_falls_back_to_one_sequential_pass(media_files):
    m = load_media(media_files["raw_h264"], num_frames=6)
    assert m.duration is None and len(m.frames) == 6
    times = [f.timestamp for f in m.frames]
    assert all(b > a for a, b in zip(times, times[1:]))


def test_ffmpeg_only_image_is_an_image(media_files):
    m = load_media(media_files["dpx"])
    assert m.kind == "image" and m.frames[0].image.shape == (48, 64, 3)


def test_sampling_seeks_instead_of_decoding_everything(media_files, monkeypatch):
    decoded = []
    frames = media._Decoder.frames

    def counting(self):
        for frame in frames(self):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(media._Decoder, "frames", counting)
    m = sample_video(media_files["long"], num_frames=4)
    assert [f.timestamp for f in m.frames] == pytest.approx([0.0, 2.5, 5.0, 7.5], abs=1 / 25)
    assert len(decoded) < 60, f"decoded {len(decoded)} of 250 frames to sample 4"


def test_seeking_returns_the_same_pixels_as_a_full_decode(media_files):
    with av.open(str(media_files["long"])) as container:
        reference = {round(float(f.time), 3): f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    m = sample_video(media_files["long"], num_frames=7)
    assert len(m.frames) == 7
    for frame in m.frames:
        assert np.array_equal(frame.image, reference[round(frame.timestamp, 3)]), frame.timestamp


def test_sequential_pass_is_bounded(media_files, monkeypatch, caplog):
    monkeypatch.setattr(media, "MAX_SEQUENTIAL_FRAMES", 10)
    with caplog.at_level(logging.WARNING, logger="deepfake_space.media"):
        m = load_media(media_files["raw_h264"], num_frames=4)
    assert len(m.frames) == 4 and m.frames[-1].timestamp < 10 / 25
    assert "first 10 frames" in caplog.text


def test_truncated_video_keeps_the_frames_it_has(media_files, caplog):
    with caplog.at_level(logging.WARNING, logger="deepfake_space.media"):
        m = load_media(media_files["truncated_webm"], num_frames=16)
    assert 0 < len(m.frames) < 16
    assert "truncated" in caplog.text


def test_too_long_video(media_files):
    with pytest.raises(MediaTooLongError, match="h264.mp4"):
        load_media(media_files["h264"], max_duration=1.0)
    with pytest.raises(MediaTooLongError, match="raw.h264"):
        load_media(media_files["raw_h264"], max_duration=0.5)


@pytest.mark.parametrize("name, error", [
    ("empty", EmptyMediaError),
    ("zero_frames", EmptyMediaError),
    ("no_streams", EmptyMediaError),
    ("audio_only", UnsupportedMediaError),
    ("text_mp4", UnsupportedMediaError),
    ("truncated_mp4", CorruptMediaError),
    ("huge_png", MediaTooLargeError),
    ("big_png", MediaTooLargeError),
])
def test_bad_files_raise_typed_errors_naming_the_file(media_files, name, error):
    with pytest.raises(error) as caught:
        load_media(media_files[name])
    assert media_files[name].name in str(caught.value)


def test_pixel_limit_applies_to_images_and_video_frames(media_files):
    with pytest.raises(MediaTooLargeError, match="image_RGB.jpg"):
        load_media(media_files["image_RGB"], max_pixels=100_000)
    with pytest.raises(MediaTooLargeError, match="h264.mp4"):
        load_media(media_files["h264"], max_pixels=50_000)


def test_corrupt_image(tmp_path, media_files):
    raw = media_files["image_RGB"].read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(raw[:len(raw) // 3])
    with pytest.raises(CorruptMediaError, match="broken.jpg"):
        load_media(broken)


def test_missing_file_and_file_limit(tmp_path, monkeypatch, media_files):
    with pytest.raises(MediaError, match="nowhere.mp4"):
        load_media(tmp_path / "nowhere.mp4")
    monkeypatch.setattr(media, "MAX_FILE_BYTES", 1000)
    with pytest.raises(MediaTooLargeError, match="h264.mp4"):
        load_media(media_files["h264"])


def test_load_image_refuses_videos(media_files):
    with pytest.raises(UnsupportedMediaError, match="h264.mp4"):
        load_image(media_files["h264"])


def test_content_decides_not_the_extension(media_files, tmp_path):
    disguised = tmp_path / "photo.mp4"
    disguised.write_bytes(media_files["image_RGB"].read_bytes())
    assert load_media(disguised).kind == "image"
    video = tmp_path / "clip.png"
    video.write_bytes(media_files["h264"].read_bytes())
    assert load_media(video, num_frames=2).kind == "video"


def test_frames_are_contiguous_and_path_is_a_string(media_files):
    m = load_media(media_files["rotated"], num_frames=2)
    assert all(f.image.flags.c_contiguous for f in m.frames)
    assert isinstance(m.path, str) and Path(m.path).name == "rotated.mp4"
