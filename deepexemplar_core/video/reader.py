"""Reading clips frame by frame: video files through PyAV, or folders of numbered images.

:func:`open_video` first demuxes the file once without decoding (fast) to learn what the
container header may not say or may get wrong: the real frame count, whether the frame rate is
variable and whether the file is truncated. Frames are then decoded one at a time, so memory
does not depend on the clip's length (the only per-frame state kept is one integer timestamp).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Suffixes of the still images accepted in a folder of numbered frames.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

#: Frame rate given to a folder of frames when the caller names none.
DEFAULT_FOLDER_FPS = Fraction(25)

#: Relative spread of the frame intervals above which a clip counts as variable frame rate.
_VFR_TOLERANCE = 0.02


class VideoReadError(ValueError):
    """A clip could not be read; the message names the path, the reason and the fix."""


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a clip before its frames are decoded.

    Attributes:
        path: the file or folder.
        kind: ``"file"`` (a video file) or ``"folder"`` (numbered images).
        width, height: frame size in pixels.
        frame_count: the number of frames (counted, not taken from the header).
        fps: average frame rate in frames per second (a folder gets the rate it was opened with).
        variable_frame_rate: True when the frame intervals differ by more than 2 %.
        time_base: seconds per timestamp tick of the video stream (``None`` for a folder).
        timestamps: presentation time of every frame in ``time_base`` ticks, in display order
            (``None`` for a folder); a writer can reuse them to keep a variable frame rate.
        has_audio: the file holds at least one audio stream.
        codec: the video codec name (``"png"`` etc. for a folder: the first file's suffix).
        duration_s: the video's length in seconds (frame count / fps for a folder).
    """

    path: Path
    kind: str
    width: int
    height: int
    frame_count: int
    fps: Fraction
    variable_frame_rate: bool
    time_base: Fraction | None
    timestamps: tuple[int, ...] | None = field(repr=False)
    has_audio: bool = field(default=False)
    codec: str = ""
    duration_s: float = 0.0


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2.png`` before ``frame10.png``.

    >>> sorted(["f10.png", "f2.png", "f1.png"], key=natural_key)
    ['f1.png', 'f2.png', 'f10.png']
    """
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def _av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is a declared dependency
        raise VideoReadError("reading video files needs PyAV: pip install av") from err
    return av


def _probe_file(path: Path) -> VideoInfo:
    """Demux ``path`` once (no decoding) and describe its first video stream."""
    av = _av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise VideoReadError(f"{path}: not a readable video file ({err}); is it truncated or not "
                             "a video?") from err
    with container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: holds no video stream")
        stream = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    pts.append(int(packet.pts))
        except av.error.FFmpegError as err:
            raise VideoReadError(f"{path}: damaged after {len(pts)} frames ({err}); the file is "
                                 "truncated or corrupt") from err
        declared = int(stream.frames or 0)
        if declared and len(pts) < declared and not _reaches_the_end(pts, stream.duration):
            raise VideoReadError(f"{path}: truncated: the header announces {declared} frames but "
                                 f"only {len(pts)} are in the file")
        pts.sort()
        time_base = Fraction(stream.time_base) if stream.time_base else None
        fps, variable = _frame_rate(pts, time_base, stream)
        _check_duration(path, pts, time_base, fps, container, has_audio)
        width, height = stream.codec_context.width, stream.codec_context.height
        codec = stream.codec_context.name
    if not pts:
        raise VideoReadError(f"{path}: the video stream holds no frames; the file is truncated or "
                             "empty")
    duration = float(len(pts) / fps) if fps else 0.0
    return VideoInfo(path, "file", width, height, len(pts), fps, variable, time_base, tuple(pts),
                     has_audio, codec, duration)


def _reaches_the_end(pts: list[int], duration: int | None) -> bool:
    """Whether the frames span the stream's announced ``duration`` (time-base units): then
    fewer frames than the header counts is a variable frame rate (an AVI whose header counts
    time steps, each frame shown for several), not a file cut short."""
    if len(pts) < 2 or not duration:
        return False
    step = float(np.median(np.diff(np.sort(np.asarray(pts, dtype=np.int64)))))
    return max(pts) - min(pts) + step >= 0.95 * duration


def _check_duration(path: Path, pts: list[int], time_base: Fraction | None, fps: Fraction,
                    container, has_audio: bool) -> None:
    """Refuse a file whose frames end well before the duration its header announces.

    Containers without a frame count in the header (Matroska, WebM) show truncation only this
    way. With an audio stream the announced duration may be the audio's, so only a warning.
    """
    if not pts or time_base is None or not container.duration or not fps:
        return
    announced = container.duration / 1_000_000
    covered = float((pts[-1] - pts[0]) * time_base + 1 / fps)
    if covered >= 0.95 * announced - 2 / float(fps):
        return
    message = (f"{path}: truncated: the header announces {announced:.2f} s but the video frames "
               f"cover {covered:.2f} s ({len(pts)} frames)")
    if has_audio:
        logger.warning("%s (or the audio is longer than the video)", message)
    else:
        raise VideoReadError(message)


def _frame_rate(pts: list[int], time_base: Fraction | None, stream) -> tuple[Fraction, bool]:
    """Average rate and whether the intervals vary; the stream's guessed rate when the frames
    keep it (or too few frames tell), the measured one when they do not."""
    guessed = stream.average_rate or stream.guessed_rate or stream.base_rate
    if len(pts) < 2 or time_base is None:
        return Fraction(guessed or DEFAULT_FOLDER_FPS), False
    steps = np.diff(np.asarray(pts, dtype=np.int64))
    steps = steps[steps > 0]
    if steps.size == 0:
        return Fraction(guessed or DEFAULT_FOLDER_FPS), False
    mean = steps.mean()
    variable = bool((steps.max() - steps.min()) > _VFR_TOLERANCE * mean + 1)
    average = (Fraction(len(steps), 1) / (Fraction(int(steps.sum()), 1) * time_base)
               ).limit_denominator(1001 * 1000)
    if not variable and guessed and abs(float(guessed) / float(average) - 1.0) < 0.01:
        return Fraction(guessed), False  # the header's exact rate (e.g. 30000/1001)
    return average, variable  # (a constant rate unlike the header's: frames several ticks apart)


def _folder_files(path: Path) -> list[Path]:
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise VideoReadError(f"{path}: folder holds no frame images ({', '.join(FRAME_SUFFIXES)})")
    return files


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file as displayed (EXIF rotation applied), header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError) as err:
        raise VideoReadError(f"{path}: not a readable image ({err})") from err
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _probe_folder(path: Path, fps: Fraction) -> tuple[VideoInfo, list[Path]]:
    files = _folder_files(path)
    width, height = _image_size(files[0])
    for file in files[1:]:
        size = _image_size(file)
        if size != (width, height):
            raise VideoReadError(
                f"{path}: frames differ in size: {file.name} is {size[0]}x{size[1]}, the first "
                f"frame {files[0].name} is {width}x{height}; resize them to one size first")
    info = VideoInfo(path, "folder", width, height, len(files), fps, False, None, None, False,
                     files[0].suffix.lower().lstrip("."), float(len(files) / fps))
    return info, files


class VideoReader:
    """A clip opened for reading; iterate it for ``(3, H, W)`` float32 RGB frames in [0, 1].

    Use :func:`open_video` to create one. Iterating decodes one frame at a time; each new
    iteration starts again from the first frame. ``read_frame(k)`` decodes frame ``k`` alone.
    """

    def __init__(self, info: VideoInfo, files: list[Path] | None = None) -> None:
        self.info = info
        self._files = files

    def __len__(self) -> int:
        return self.info.frame_count

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._files is not None:
            yield from self._iter_folder()
        else:
            yield from self._iter_file()

    def read_frame(self, index: int) -> torch.Tensor:
        """Frame ``index`` (0-based) as ``(3, H, W)`` float32 in [0, 1]."""
        if not 0 <= index < self.info.frame_count:
            raise VideoReadError(f"frame index: expected 0 <= index < {self.info.frame_count} "
                                 f"(the clip's frame count), got {index}")
        for i, frame in enumerate(self):
            if i == index:
                return frame
        raise VideoReadError(f"{self.info.path}: frame {index} could not be decoded")

    def _iter_folder(self) -> Iterator[torch.Tensor]:
        from ..image_io import ImageReadError, read_image

        for file in self._files or []:
            try:
                pixels = read_image(file).pixels
            except ImageReadError as err:
                raise VideoReadError(str(err)) from err
            if tuple(pixels.shape[-2:]) != (self.info.height, self.info.width):
                raise VideoReadError(f"{file}: changed size while reading; expected "
                                     f"{self.info.width}x{self.info.height}")
            yield pixels.expand(3, -1, -1).contiguous() if pixels.shape[0] == 1 else pixels[:3]

    def _iter_file(self) -> Iterator[torch.Tensor]:
        av = _av()
        path, count = self.info.path, 0
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    array = frame.to_ndarray(format="rgb24")
                    if array.shape[:2] != (self.info.height, self.info.width):
                        raise VideoReadError(
                            f"{path}: frame {count} is {array.shape[1]}x{array.shape[0]}, the "
                            f"clip starts at {self.info.width}x{self.info.height}; clips that "
                            "change size are not supported")
                    count += 1
                    yield torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)
        except av.error.FFmpegError as err:
            raise VideoReadError(f"{path}: decoding failed at frame {count} ({err}); the file "
                                 "is damaged") from err
        if count < self.info.frame_count:
            raise VideoReadError(f"{path}: only {count} of {self.info.frame_count} frames could "
                                 "be decoded; the file is damaged")


def open_video(path: str | os.PathLike, *, fps: float | Fraction | None = None,
               min_frames: int = 1) -> VideoReader:
    """Open a video file or a folder of numbered frames for streaming.

    Args:
        path: a video file (anything FFmpeg reads) or a folder of images named so that natural
            sorting gives the frame order (``f1.png, f2.png, ..., f10.png``); all of one size.
        fps: frame rate of a folder of frames (default 25); ignored for video files.
        min_frames: refuse clips with fewer frames (a video needs 2 to be a video).

    Returns:
        VideoReader with ``info`` filled in; iterate it for frames.

    Raises:
        VideoReadError: missing, unreadable, truncated or empty clip, frames of different sizes,
            fewer than ``min_frames`` frames.

    Example:
        >>> import tempfile, pathlib
        >>> from deepexemplar_core.video import write_video
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "clip.mp4"
        >>> _ = write_video(out, (torch.rand(3, 32, 48) for _ in range(3)), fps=10)
        >>> reader = open_video(out)
        >>> reader.info.frame_count, reader.info.fps, (reader.info.width, reader.info.height)
        (3, Fraction(10, 1), (48, 32))
        >>> next(iter(reader)).shape
        torch.Size([3, 32, 48])
    """
    path = Path(path)
    if path.is_dir():
        rate = Fraction(fps).limit_denominator(1001 * 1000) if fps else DEFAULT_FOLDER_FPS
        if rate <= 0:
            raise VideoReadError(f"fps: expected a positive frame rate, got {fps}")
        info, files = _probe_folder(path, rate)
        reader = VideoReader(info, files)
    elif path.is_file():
        reader = VideoReader(_probe_file(path))
    else:
        raise VideoReadError(f"{path}: no such file or folder")
    if reader.info.frame_count < min_frames:
        raise VideoReadError(
            f"{path}: holds {reader.info.frame_count} frame(s); at least {min_frames} are needed "
            "(colorize a single picture with `deepexemplar colorize`)")
    if reader.info.variable_frame_rate:
        logger.info("%s: variable frame rate (average %.3f fps); frame times are kept",
                    path, float(reader.info.fps))
    return reader
