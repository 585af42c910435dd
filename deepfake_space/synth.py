"""Synthesized media with a real face (scikit-image's astronaut), for examples, tests and the bench.

Nothing is downloaded: the face comes with scikit-image, the video is encoded with PyAV.
"""

from __future__ import annotations

from pathlib import Path

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


def write_face_video(path: str | Path, seconds: float = 10.0, height: int = 720, fps: int = 30,
                     codec: str = "libx264") -> Path:
    """Encode a ``seconds``-long 16:9 video of a moving face (H.264 in .mp4 by default)."""
    path = Path(path)
    width = (height * 16 // 9) // 2 * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if codec != "mjpeg" else "yuvj420p"
        stream.options = {"preset": "veryfast"} if codec == "libx264" else {}
        scene = FaceScene(width, height)
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(scene.frame(i / fps), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
