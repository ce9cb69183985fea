"""Writing clips frame by frame: H.264 video files (audio copied from the source) or PNG folders.

Both writers consume an iterable of frames, so a generator that colorizes frame after frame
streams through them with memory independent of the clip's length. Neither leaves anything
half-written: a video file is encoded into a temporary file in the destination folder (the
project's one atomic writer, :func:`deepexemplar_core.files.atomic_write`) and a folder of
frames into a temporary folder; both are moved into place only after the last frame. An error,
Ctrl-C or a SIGTERM turned into an exception removes the temporary file or folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

#: Container per output suffix (H.264 fits all of them).
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

#: Audio codecs the MP4/MOV muxers accept as they are; others are re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


class VideoWriteError(ValueError):
    """A clip could not be written; the message names the path, the reason and the fix."""


@dataclass(frozen=True)
class WriteSummary:
    """What a writer wrote.

    Attributes:
        path: the file or folder written.
        frames: the number of frames written.
        width, height: frame size written (a video file's size may be one pixel smaller than
            the frames': see ``cropped``).
        codec: ``"libx264"``, ``"mpeg4"`` or ``"png"``.
        fps: average frame rate of the output.
        audio: ``"copied"`` (packets remuxed unchanged), ``"re-encoded"`` (to AAC), ``"none"``
            (the source has no audio or none was asked for).
        cropped: True when an odd width or height was cropped by one pixel (4:2:0 video needs
            even sizes).
        encode_seconds: time spent encoding and writing, excluding waiting for frames.
    """

    path: Path
    frames: int
    width: int
    height: int
    codec: str
    fps: Fraction
    audio: str
    cropped: bool
    encode_seconds: float


def _to_uint8_hwc(frame: torch.Tensor, index: int) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] or uint8 -> ``(H, W, 3)`` uint8 array."""
    if not isinstance(frame, torch.Tensor) or frame.dim() != 3 or frame.shape[0] != 3:
        shape = tuple(frame.shape) if isinstance(frame, torch.Tensor) else type(frame).__name__
        raise VideoWriteError(f"frames[{index}]: expected a (3, H, W) tensor, got {shape}")
    if frame.dtype != torch.uint8:
        frame = (frame.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(frame.cpu().permute(1, 2, 0).numpy())


def choose_codec() -> str:
    """``"libx264"`` when PyAV's FFmpeg has it, else ``"mpeg4"`` (always built in)."""
    import av

    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except (av.error.FFmpegError, ValueError):  # pragma: no cover - depends on the FFmpeg build
        return "mpeg4"


class _AudioCopy:
    """Audio of a source file carried into an output container, interleaved with the video."""

    def __init__(self, source: Path, output, container_format: str) -> None:
        import av

        self._av = av
        self._input = av.open(str(source))
        stream = self._input.streams.audio[0]
        name = stream.codec_context.name
        self.copy = container_format == "matroska" or name in _MP4_AUDIO
        if self.copy:
            self._out = output.add_stream_from_template(stream)
            self._items: Iterator = (p for p in self._input.demux(stream) if p.dts is not None)
        else:
            self._out = output.add_stream("aac", rate=stream.rate)
            self._items = self._input.decode(stream)
        self._pending = None
        self._output = output
        self.mode = "copied" if self.copy else "re-encoded"

    def _time(self, item) -> float:
        if item.pts is None or item.time_base is None:
            return float("-inf")
        return float(item.pts * item.time_base)

    def _mux(self, item) -> None:
        if self.copy:
            item.stream = self._out
            self._output.mux(item)
        else:
            item.pts = None
            self._output.mux(self._out.encode(item))

    def until(self, seconds: float) -> None:
        """Mux the audio that plays before ``seconds`` (keeps the file interleaved)."""
        while True:
            if self._pending is None:
                self._pending = next(self._items, None)
                if self._pending is None:
                    return
            if self._time(self._pending) > seconds:
                return
            self._mux(self._pending)
            self._pending = None

    def finish(self) -> None:
        """Mux the rest of the audio and flush the encoder."""
        self.until(float("inf"))
        if not self.copy:
            self._output.mux(self._out.encode(None))

    def close(self) -> None:
        self._input.close()


class _Timestamps:
    """Presentation time of frame ``i``: the source's timestamps, or ``i / fps``."""

    def __init__(self, fps: Fraction, timestamps, time_base) -> None:
        self.variable = bool(timestamps) and time_base is not None
        self.time_base = Fraction(time_base) if self.variable else 1 / fps
        self._ts = list(timestamps) if self.variable else []
        self._step = (max(1, round((1 / fps) / self.time_base)) if self.variable else 1)

    def __call__(self, i: int) -> int:
        if not self.variable:
            return i
        if i < len(self._ts):
            return self._ts[i]
        return self._ts[-1] + (i - len(self._ts) + 1) * self._step


def _encode(f, frames: Iterable[torch.Tensor], fmt: str, fps: Fraction, stamps: _Timestamps,
            audio_from: Path | None, crf: int, total: int, progress: Progress | None) -> dict:
    """Encode ``frames`` into the open binary file ``f``; return counters for the summary."""
    import av

    codec = choose_codec()
    container = av.open(f, "w", format=fmt)
    stats = {"frames": 0, "codec": codec, "audio": "none", "cropped": False, "size": (0, 0),
             "encode": 0.0}
    stream, audio, failed = None, None, True
    try:
        for index, frame in enumerate(frames):
            start = time.perf_counter()
            array = _to_uint8_hwc(frame, index)
            if stream is None:
                stream, stats = _open_stream(container, codec, array, fps, stamps, crf, stats)
                if audio_from is not None:
                    audio = _AudioCopy(audio_from, container, fmt)
                    stats["audio"] = audio.mode
            height, width = stats["size"]
            if array.shape[:2] != (height + (array.shape[0] % 2), width + (array.shape[1] % 2)):
                raise VideoWriteError(f"frames[{index}]: size {array.shape[1]}x{array.shape[0]} "
                                      f"differs from the first frame's; a clip has one size")
            picture = av.VideoFrame.from_ndarray(array[:height, :width], format="rgb24")
            picture.pts, picture.time_base = stamps(index), stamps.time_base
            if audio is not None:
                audio.until(float(picture.pts * stamps.time_base))
            container.mux(stream.encode(picture))
            stats["frames"] = index + 1
            stats["encode"] += time.perf_counter() - start
            if progress is not None:
                progress(index + 1, total)
        if stream is None:
            raise VideoWriteError("frames: no frame to write; a video needs at least one")
        start = time.perf_counter()
        container.mux(stream.encode(None))
        if audio is not None:
            audio.finish()
        stats["encode"] += time.perf_counter() - start
        failed = False
    finally:
        if audio is not None:
            audio.close()
        if failed:  # the temporary file is deleted anyway; do not let close() mask the error
            with contextlib.suppress(Exception):
                container.close()
        else:
            container.close()
    return stats


def _open_stream(container, codec: str, array: np.ndarray, fps: Fraction, stamps: _Timestamps,
                 crf: int, stats: dict):
    height, width = array.shape[0] - array.shape[0] % 2, array.shape[1] - array.shape[1] % 2
    if min(height, width) < 2:
        raise VideoWriteError(f"frames: {array.shape[1]}x{array.shape[0]} is too small to encode")
    if (height, width) != array.shape[:2]:
        logger.info("odd frame size %dx%d: cropped to %dx%d for 4:2:0 video (write a folder of "
                    "PNG frames to keep every pixel)", array.shape[1], array.shape[0], width, height)
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = stamps.time_base
    stream.time_base = stamps.time_base
    if codec == "libx264":
        stream.options = {"crf": str(crf), "preset": "medium"}
    else:  # pragma: no cover - only with an FFmpeg build without libx264
        stream.bit_rate = 8_000_000
    stats = dict(stats, size=(height, width), cropped=(height, width) != array.shape[:2])
    return stream, stats


def write_video(
    path: str | os.PathLike,
    frames: Iterable[torch.Tensor],
    *,
    fps: float | Fraction,
    timestamps: Iterable[int] | None = None,
    time_base: Fraction | None = None,
    audio_from: str | os.PathLike | None = None,
    crf: int = 18,
    total: int = 0,
    progress: Progress | None = None,
) -> WriteSummary:
    """Encode frames into an H.264 video file, atomically.

    Args:
        path: output file; ``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``. Its folder must exist.
        frames: ``(3, H, W)`` float RGB in [0, 1] (or uint8), all of one size; consumed lazily.
            Odd sizes are cropped by one pixel (``cropped`` is set in the summary and noted in
            the log at INFO level: the caller says it to its user, as ``deepexemplar video``
            does before any work).
        fps: frame rate (used as is when ``timestamps`` is ``None``).
        timestamps: presentation times in ``time_base`` ticks, one per frame (a source's, to
            keep a variable frame rate); frames beyond them continue at ``fps``.
        time_base: seconds per tick of ``timestamps``.
        audio_from: a video file whose first audio stream is copied (packets remuxed unchanged
            when the container takes the codec, else re-encoded to AAC).
        crf: libx264 quality (0 lossless .. 51 worst; 18 is visually lossless).
        total: expected frame count, only passed on to ``progress``.
        progress: called with ``(frames written, total)`` after each frame.

    Returns:
        WriteSummary.

    Raises:
        VideoWriteError: unsupported suffix, missing folder, no frames, frames of different
            sizes. Nothing is left at ``path`` (an existing file there is kept unchanged).
    """
    from ..files import atomic_write

    path = Path(path)
    fmt = VIDEO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise VideoWriteError(f"{path}: unsupported video suffix {path.suffix!r}; use one of "
                              f"{', '.join(VIDEO_FORMATS)} (or a folder name for PNG frames)")
    if not path.parent.is_dir():
        raise VideoWriteError(f"{path}: the folder {path.parent} does not exist")
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    if rate <= 0:
        raise VideoWriteError(f"fps: expected a positive frame rate, got {fps}")
    stamps = _Timestamps(rate, list(timestamps) if timestamps is not None else None, time_base)
    source = Path(audio_from) if audio_from is not None else None
    if source is not None and not _has_audio(source):
        source = None
    stats: dict = {}

    def write(f) -> None:
        stats.update(_encode(f, frames, fmt, rate, stamps, source, crf, total, progress))

    atomic_write(path, write)
    height, width = stats["size"]
    return WriteSummary(path, stats["frames"], width, height, stats["codec"], rate, stats["audio"],
                        stats["cropped"], stats["encode"])


def _has_audio(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError:
        return False


def write_frame_folder(
    path: str | os.PathLike,
    frames: Iterable[torch.Tensor],
    *,
    pattern: str = "frame_{:06d}.png",
    fps: float | Fraction = 25,
    total: int = 0,
    progress: Progress | None = None,
) -> WriteSummary:
    """Write frames as numbered 8-bit PNG files into a new folder, atomically.

    The frames go into a temporary folder next to ``path`` that is renamed to ``path`` after the
    last frame. ``path`` must not exist or be an empty folder.

    Args:
        path: the folder to create.
        frames: ``(3, H, W)`` float RGB in [0, 1] (or uint8), all of one size; consumed lazily.
        pattern: file name per frame index (``str.format``); must sort in frame order.
        fps: only reported in the summary (PNG files carry no timing).
        total: expected frame count, only passed on to ``progress``.
        progress: called with ``(frames written, total)`` after each frame.

    Returns:
        WriteSummary (``codec="png"``, ``audio="none"``).

    Raises:
        VideoWriteError: ``path`` is a file or a non-empty folder, no frames, frames of
            different sizes.
    """
    from ..image_io import write_image

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise VideoWriteError(f"{path}: exists and is not an empty folder; choose a new output "
                              "folder (frames are never mixed with other files)")
    if not path.parent.is_dir():
        raise VideoWriteError(f"{path}: the folder {path.parent} does not exist")
    # a new folder with the mode the umask gives (mkdtemp would make it private, 0700)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    temporary.mkdir()
    count, size, spent = 0, (0, 0), 0.0
    try:
        for index, frame in enumerate(frames):
            start = time.perf_counter()
            array = _to_uint8_hwc(frame, index)
            if index == 0:
                size = array.shape[:2]
            elif array.shape[:2] != size:
                raise VideoWriteError(f"frames[{index}]: size {array.shape[1]}x{array.shape[0]} "
                                      f"differs from the first frame's; a clip has one size")
            rgb = torch.from_numpy(array).permute(2, 0, 1)
            write_image(temporary / pattern.format(index), rgb.float() / 255.0, bit_depth=8)
            count = index + 1
            spent += time.perf_counter() - start
            if progress is not None:
                progress(count, total)
        if count == 0:
            raise VideoWriteError("frames: no frame to write; a clip needs at least one")
        if path.is_dir():
            path.rmdir()
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return WriteSummary(path, count, size[1], size[0], "png", Fraction(fps), "none", False, spent)
