"""Synthesized media with a real face (scikit-image's astronaut), for examples, tests and the bench.

Nothing is downloaded: the face comes with scikit-image, the video is encoded with PyAV.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import av
import numpy as np
from PIL import Image
from skimage import data

ASTRONAUT_FACE_BOX = (150, 20, 310, 200)  # x0, y0, x1, y1 of the head in skimage.data.astronaut()


def astronaut() -> np.ndarray:
    """512 x 512 RGB photo with one real face."""
    return data.astronaut()


class FaceScene:
    """Frames of the astronaut's head drifting slowly over a colour-gradient background."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.side = int(height * 0.45)
        head = Image.fromarray(astronaut()).crop((100, 0, 360, 260)).resize((self.side, self.side), Image.BILINEAR)
        self.head = np.asarray(head)
        yy, xx = np.mgrid[0:height, 0:width]
        self.background = np.stack([xx * 255 // max(1, width - 1), yy * 255 // max(1, height - 1),
                                    np.full_like(xx, 96)], axis=-1).astype(np.uint8)

    def frame(self, t: float) -> np.ndarray:
        """The frame at time ``t`` seconds."""
        out = self.background.copy()
        x = int((self.width - self.side) / 2 + np.sin(t * 0.8) * self.width * 0.2)
        y = int((self.height - self.side) / 2 + np.cos(t * 0.6) * self.height * 0.1)
        out[y:y + self.side, x:x + self.side] = self.head
        return out


def write_video(path: str | Path, frame_at: Callable[[float], np.ndarray], seconds: float, fps: int,
                codec: str = "libx264", crf: int | None = None) -> Path:
    """Encode ``frame_at(t)`` (H x W x 3 uint8 RGB, even sides) for ``seconds`` at ``fps`` into ``path``: the one
    video writer of the examples, the bench and the tests. Written under a temporary name and renamed, so a
    concurrent reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
    first = frame_at(0.0)
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p" if codec != "mjpeg" else "yuvj420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast"} | ({"crf": str(crf)} if crf is not None else {})
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(first if i == 0 else frame_at(i / fps), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    tmp.replace(path)
    return path


def write_face_video(path: str | Path, seconds: float = 10.0, height: int = 720, fps: int = 30,
                     codec: str = "libx264") -> Path:
    """Encode a ``seconds``-long 16:9 video of a moving face (H.264 in .mp4 by default)."""
    width = (height * 16 // 9) // 2 * 2
    return write_video(path, FaceScene(width, height).frame, seconds, fps, codec)
