"""Video clips in and out, frame by frame: PyAV for files, numbered images for folders.

>>> from deepexemplar_core.video import open_video, write_video
>>> reader = open_video("in.mp4")                                  # doctest: +SKIP
>>> write_video("out.mp4", (f for f in reader), fps=reader.info.fps,
...             audio_from="in.mp4")                               # doctest: +SKIP

Reading demuxes the file once to count its frames and detect truncation and variable frame
rates; writing encodes H.264 into a temporary file that replaces the output only when complete.
"""

from __future__ import annotations

from .reader import (
    DEFAULT_FOLDER_FPS,
    FRAME_SUFFIXES,
    VideoInfo,
    VideoReader,
    VideoReadError,
    natural_key,
    open_video,
)
from .writer import (
    VIDEO_FORMATS,
    VideoWriteError,
    WriteSummary,
    choose_codec,
    write_frame_folder,
    write_video,
)

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "FRAME_SUFFIXES",
    "VIDEO_FORMATS",
    "VideoInfo",
    "VideoReadError",
    "VideoReader",
    "VideoWriteError",
    "WriteSummary",
    "choose_codec",
    "natural_key",
    "open_video",
    "write_frame_folder",
    "write_video",
]
