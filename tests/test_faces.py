"""Face cascade, crops and tracks on real faces (skimage's astronaut, a DFDC crop) and synthetic videos."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from deepfake_space import faces
from deepfake_space.errors import FaceDetectorError
from deepfake_space.faces import (DETECTORS, Face, FaceDetector, crop_face, iou, merge_detections,
                                  square_windows, track_faces, whole_image_face)
from deepfake_space.media import load_image, load_media
from deepfake_space.synth import FaceScene
from media_factory import ASTRONAUT_FACE, astronaut_image

DFDC_VALIDATION = Path(__file__).resolve().parents[2] / "shared/data/dfdc_faces/data/validation-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def cascade():
    with FaceDetector() as detector:
        yield detector


class _Finds:
    """A stand-in detector backend with a fixed answer (or failure), to exercise the cascade logic."""

    answer: list | Exception = []

    def __init__(self, min_score: float) -> None:
        pass

    def detect(self, rgb: np.ndarray) -> list:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def close(self) -> None:
        pass


def backend(answer: list | Exception) -> type:
    return type("Stub", (_Finds,), {"answer": answer})


@pytest.mark.parametrize("name", DETECTORS)
def test_each_detector_alone_finds_the_astronaut(name):
    with FaceDetector(detectors=(name,)) as detector:
        found = detector.detect(astronaut_image(), frame_index=3)
    assert found, f"{name} found no face"
    best = found[0]
    assert best.detector == name and best.frame_index == 3 and 0 < best.score <= 1
    assert iou(best.box, ASTRONAUT_FACE) > 0.5, best.box


def test_cascade_reports_the_first_detector_that_fires(cascade, monkeypatch):
    assert [f.detector for f in cascade.detect(astronaut_image())] == ["mediapipe"]
    monkeypatch.setattr(faces, "_BACKENDS", {**faces._BACKENDS, "mediapipe": backend([])})
    with FaceDetector() as detector:
        found = detector.detect(astronaut_image())
    assert found[0].detector == "dlib" and iou(found[0].box, ASTRONAUT_FACE) > 0.5


def test_a_failing_detector_hands_over_and_all_failing_is_an_error(monkeypatch):
    broken = backend(RuntimeError("model exploded"))
    monkeypatch.setattr(faces, "_BACKENDS", {**faces._BACKENDS, "mediapipe": broken})
    with FaceDetector(("mediapipe", "haar")) as detector:
        assert detector.detect(astronaut_image())[0].detector == "haar"
    monkeypatch.setattr(faces, "_BACKENDS", {"mediapipe": broken, "dlib": broken, "haar": broken})
    with FaceDetector() as detector, pytest.raises(FaceDetectorError, match="model exploded"):
        detector.detect(astronaut_image())


def test_unknown_or_missing_detectors_fail_at_construction(monkeypatch, tmp_path):
    with pytest.raises(FaceDetectorError, match="retinaface"):
        FaceDetector(("mediapipe", "retinaface"))
    with pytest.raises(FaceDetectorError):
        FaceDetector(())
    monkeypatch.setattr(faces, "MEDIAPIPE_MODEL", tmp_path / "missing.tflite")
    with pytest.raises(FaceDetectorError, match="missing.tflite"):
        FaceDetector(("mediapipe",))
    FaceDetector(("dlib", "haar")).close()


@pytest.mark.parametrize("image", [data.coffee(), data.chelsea(), np.full((300, 400, 3), 128, np.uint8)],
                         ids=["coffee", "cat", "flat"])
def test_no_face_gives_an_empty_list(cascade, image):
    assert cascade.detect(image) == []


def test_mediapipe_finds_every_face_of_a_widescreen_video():
    """BlazeFace short-range misses a half-height face in a letterboxed 16:9 frame; the square windows find it
    in every sampled frame, once, without falling back to dlib."""
    scene = FaceScene(1280, 720)
    with FaceDetector(detectors=("mediapipe",)) as detector:
        per_frame = [detector.detect(scene.frame(t)) for t in np.linspace(0, 10, 16, endpoint=False)]
    assert [len(found) for found in per_frame] == [1] * 16


def test_square_windows_cover_the_long_side_with_overlap():
    assert square_windows(512, 512) == []
    wide = square_windows(1280, 720)
    assert [w[0] for w in wide] == [0, 280, 560] and all(w[1:] == (0, 720) for w in wide)
    assert [w[1] for w in square_windows(360, 640)] == [0, 140, 280]


def test_merge_keeps_the_best_of_overlapping_boxes_and_separate_faces():
    whole, cut, other = ((100, 100, 200, 200), 0.9), ((100, 100, 150, 200), 0.7), ((400, 100, 500, 200), 0.8)
    assert merge_detections([cut, other, whole]) == [whole, other]


def test_boxes_are_mapped_back_from_the_downscaled_copy():
    big = cv2.resize(astronaut_image(), (1536, 1536), interpolation=cv2.INTER_LINEAR)
    with FaceDetector(("haar",), max_side=512) as detector:
        found = detector.detect(big)
    assert iou(found[0].box, tuple(3 * v for v in ASTRONAUT_FACE)) > 0.5


def test_rejects_what_is_not_an_rgb_uint8_frame(cascade):
    with pytest.raises(ValueError):
        cascade.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        cascade.detect(np.zeros((10, 10, 3), np.float32))


def test_detect_is_safe_from_several_threads(cascade):
    image = astronaut_image()
    results: list[list[Face]] = []
    threads = [threading.Thread(target=lambda: results.append(cascade.detect(image))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(r == results[0] for r in results)


def test_video_faces_are_found_and_tracked(cascade, media_files):
    media = load_media(media_files["h264"], num_frames=6)
    per_frame = cascade.detect_frames(media.frames)
    assert [len(fs) for fs in per_frame] == [1] * 6
    assert {f.track_id for fs in per_frame for f in fs} == {0}
    assert [fs[0].frame_index for fs in per_frame] == list(range(6))
    assert per_frame[1][0].box[0] > per_frame[0][0].box[0]


def test_rotated_phone_video_is_upright_for_the_detectors(media_files):
    frames = load_media(media_files["rotated"], num_frames=2).frames
    with FaceDetector(("dlib",)) as upright_only:
        assert all(upright_only.detect(f.image) for f in frames)


def test_whole_image_face_covers_the_frame():
    face = whole_image_face(np.zeros((90, 120, 3), np.uint8), frame_index=2)
    assert face == Face((0.0, 0.0, 120.0, 90.0), 1.0, "whole_image", 2)


@pytest.mark.skipif(not DFDC_VALIDATION.is_file(), reason=f"{DFDC_VALIDATION} is not present")
def test_dfdc_crop_in_whole_image_mode(tmp_path):
    import pyarrow.parquet as pq

    row = next(pq.ParquetFile(DFDC_VALIDATION).iter_batches(batch_size=1, columns=["image"])).to_pylist()[0]
    path = tmp_path / "dfdc_crop.png"
    path.write_bytes(row["image"]["bytes"])
    image = load_image(path)
    face = whole_image_face(image)
    assert face.box == (0.0, 0.0, float(image.shape[1]), float(image.shape[0]))
    crop = crop_face(image, face.box, margin=0.0)
    side = max(image.shape[:2])
    assert crop.shape == (side, side, 3) and crop.dtype == np.uint8
    if image.shape[0] == image.shape[1]:
        assert np.array_equal(crop, image)


def test_crop_is_square_centred_and_sized_by_the_margin():
    image = astronaut_image()
    crop = crop_face(image, (200, 100, 260, 180), margin=0.25)
    assert crop.shape == (100, 100, 3) and crop.dtype == np.uint8
    assert np.array_equal(crop, image[90:190, 180:280])


def test_crop_at_the_border_is_padded_by_edge_replication():
    image = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    crop = crop_face(image, (0, 0, 40, 40), margin=0.5)
    assert crop.shape == (60, 60, 3)
    assert np.array_equal(crop[10:, 10:], image[:50, :50])
    assert np.array_equal(crop[:10, 10:], np.repeat(image[:1, :50], 10, axis=0))
    assert np.array_equal(crop[10:, :10], np.repeat(image[:50, :1], 10, axis=1))
    assert np.all(crop[:10, :10] == image[0, 0])


def test_crop_rejects_empty_or_outside_boxes():
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError):
        crop_face(image, (10, 10, 10, 30), margin=0.1)
    with pytest.raises(ValueError):
        crop_face(image, (200, 200, 240, 240), margin=0.1)


def face(box, frame_index=0) -> Face:
    return Face(tuple(float(v) for v in box), 0.9, "haar", frame_index)


def test_tracks_follow_a_moving_face_and_keep_people_apart():
    per_frame = [[face((10 + 5 * i, 10, 60 + 5 * i, 60), i), face((200, 10 + 4 * i, 250, 60 + 4 * i), i)]
                 for i in range(5)]
    per_frame[2].reverse()
    tracked = track_faces(per_frame)
    for frame in tracked:
        ids = {f.track_id: f.box[0] for f in frame}
        assert set(ids) == {0, 1} and ids[0] < 100 < ids[1]
    assert all(f.track_id == 0 for f in per_frame[0]), "input faces must not be modified"


def test_tracks_survive_a_gap_and_new_people_get_new_ids():
    per_frame = [[face((0, 0, 50, 50))], [], [face((2, 0, 52, 50)), face((300, 300, 350, 350))],
                 [face((500, 0, 550, 50))]]
    ids = [[f.track_id for f in frame] for frame in track_faces(per_frame)]
    assert ids == [[0], [], [0, 1], [2]]


def _cartoon_face(seed: int) -> np.ndarray:
    """A drawn smiley on a flat background: Haar's cascade fires on some of them."""
    rng = np.random.default_rng(seed)
    img = np.full((480, 640, 3), rng.integers(150, 255, 3), np.uint8)
    centre, r = (320, 240), int(rng.integers(90, 160))
    cv2.circle(img, centre, r, (255, 220, 0), -1)
    cv2.circle(img, centre, r, (0, 0, 0), 3)
    for dx in (-r // 3, r // 3):
        cv2.ellipse(img, (centre[0] + dx, centre[1] - r // 4), (r // 10, r // 6), 0, 0, 360, (0, 0, 0), -1)
    cv2.ellipse(img, (centre[0], centre[1] + r // 5), (r // 2, r // 3), 0, 20, 160, (0, 0, 0), 6)
    return img


def test_hits_on_noise_and_cartoons_need_dlib_to_agree():
    """Unconfirmed, BlazeFace finds 'faces' in random noise and Haar in cartoons; confirmed, neither does,
    and the astronaut is still found."""
    images = [np.random.default_rng(s).integers(0, 256, (480, 640, 3), dtype=np.uint8) for s in range(12)]
    images += [_cartoon_face(s) for s in range(4)]
    with FaceDetector(confirm=False) as loose, FaceDetector() as strict:
        assert sum(bool(loose.detect(img)) for img in images) >= 3, "the unconfirmed cascade fires on some"
        assert [strict.detect(img) for img in images] == [[]] * len(images)
        assert iou(strict.detect(astronaut_image())[0].box, ASTRONAUT_FACE) > 0.5


def test_confirmation_works_at_any_face_size():
    """The region is re-framed to one scale, so a tiny face and a huge one are both confirmed."""
    face = astronaut_image()[60:200, 160:290]
    with FaceDetector(("mediapipe",)) as detector:
        for size in (90, 900):
            found = detector.detect(cv2.resize(face, (size, round(size * 140 / 130))))
            assert len(found) == 1, size
