"""``deepexemplar video`` end to end on short real clips (lite model, working size 64)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import torch
from PIL import Image
from video_clips import audio_seconds, chelsea_frames, make_clip

import deepexemplar_core
import deepexemplar_core.schedule
from deepexemplar_core import rgb_to_lab
from deepexemplar_core.cli import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    main,
)
from deepexemplar_core.video import open_video, write_frame_folder, write_video

pytestmark = pytest.mark.e2e  # the video command end to end (decode, colorize, smooth, encode)

FAST = ["--size", "64", "--chunk", "4", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """8-frame 96x64 clips at 12 fps: colour with audio, gray without; a colour photo."""
    folder = tmp_path_factory.mktemp("clips")
    photo = folder / "reference.png"
    Image.fromarray(chelsea_frames(1, 160, 120)[0]).save(photo)
    return {
        "colour": make_clip(folder / "colour.mp4", count=8),
        "gray": make_clip(folder / "gray.mp4", count=8, gray=True, audio=False),
        "reference": photo,
    }


def _ab(frames) -> torch.Tensor:
    return torch.stack([rgb_to_lab(f[None])[0, 1:] for f in frames])


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(["video", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_keyframe_of_a_colour_clip_recolours_the_shot(clips, tmp_path, capsys):
    """Frame 0's own colours carried to the gray frames: close to the clip's true colours."""
    out = tmp_path / "out.mp4"
    code, stdout, err = _run(capsys, clips["colour"], "--keyframe", "0", "-o", out,
                             "--temporal", "off", "--json", *FAST)
    assert code == EXIT_OK, err
    summary = json.loads(stdout)
    assert summary["frames"] == 8 and summary["audio"] == "copied" and summary["keyframe"] == 0
    assert summary["scene_cuts"] is None  # not looked for without the smoothing
    assert set(summary["seconds_per_frame"]) >= {"read", "colorize", "write", "total"}
    info = open_video(out).info
    assert (info.frame_count, info.fps, info.width, info.height) == (8, Fraction(12), 96, 64)
    assert audio_seconds(out) == pytest.approx(audio_seconds(clips["colour"]), abs=1e-3)
    truth, result = _ab(list(open_video(clips["colour"]))), _ab(list(open_video(out)))
    chroma = truth.norm(dim=1).mean()
    error = (result - truth).norm(dim=1).mean(dim=(1, 2))
    assert chroma > 10  # chelsea is a colourful photo
    assert float(error[0]) < 0.2 * float(chroma)  # the key frame keeps its own colours
    assert float(error.max()) < 0.6 * float(chroma), (error, chroma)  # gray would be 1.0


def test_gray_clip_with_a_reference_photo_and_smoothing(clips, tmp_path, capsys):
    out = tmp_path / "out.mkv"
    code, stdout, err = _run(capsys, clips["gray"], "-r", clips["reference"], "-o", out,
                             "--temporal", "fast", "--json", *FAST)
    assert code == EXIT_OK, err
    summary = json.loads(stdout)
    assert summary["temporal"] == "fast" and summary["scene_cuts"] == []
    assert summary["audio"] == "none (the input has no audio)"
    assert summary["seconds_per_frame"]["temporal"] > 0
    frames = list(open_video(out))
    assert len(frames) == 8 and open_video(out).info.fps == Fraction(12)
    assert float(_ab(frames).norm(dim=1).mean()) > 5  # colour where the input was gray
    gray_l = torch.stack([rgb_to_lab(f[None])[0, 0] for f in open_video(clips["gray"])])
    out_l = torch.stack([rgb_to_lab(f[None])[0, 0] for f in frames])
    assert float((gray_l - out_l).abs().mean()) < 2.0  # luminance kept (up to the codec)


def test_gray_clip_with_colourized_keyframe(clips, tmp_path, capsys):
    """A gray clip and a colour version of frame 3: frame 3 gets exactly those colours."""
    key = tmp_path / "key.png"
    Image.fromarray(chelsea_frames(4)[3]).save(key)
    out = tmp_path / "frames"
    code, stdout, err = _run(capsys, clips["gray"], "--keyframe", "3", "-r", key, "-o", out,
                             "--temporal", "off", *FAST)
    assert code == EXIT_OK, err
    assert "8 frames" in stdout and "scene cuts not looked for" in stdout  # not 'none'
    assert "scene cuts at frames" not in stdout
    frames = list(open_video(out))
    assert len(frames) == 8 and len(list(out.iterdir())) == 8
    truth = _ab([torch.from_numpy(chelsea_frames(4)[3]).permute(2, 0, 1).float() / 255])[0]
    assert float((_ab(frames[3:4])[0] - truth).norm(dim=0).mean()) < 0.2 * float(
        truth.norm(dim=0).mean())


def test_variable_frame_rate_and_odd_size(tmp_path, capsys):
    """Frame times of a variable-rate clip are kept; an odd size loses one pixel, and says so."""
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in chelsea_frames(5, 95, 63)]
    ticks = [0, 2, 3, 7, 8]
    source = tmp_path / "vfr.mkv"
    write_frame_folder(tmp_path / "odd", iter(frames))
    code, stdout, err = _run(capsys, tmp_path / "odd", "--keyframe", "0", "-o", source,
                             "--temporal", "off", "--fps", "10", *FAST)
    assert code == EXIT_OK, err
    assert "94x62 (cropped to even size)" in stdout
    assert err.count("the frames are 95x63; the video will be cropped to 94x62") == 1, err
    write_video(source, (f[:, :62, :94] for f in frames), fps=10, timestamps=ticks,
                time_base=Fraction(1, 10))
    out = tmp_path / "out.mp4"
    code, stdout, err = _run(capsys, source, "--keyframe", "0", "-o", out, "--temporal", "off",
                             "--json", *FAST)
    assert code == EXIT_OK, err
    assert json.loads(stdout)["variable_frame_rate"] is True
    info = open_video(out).info
    seconds = [float((t - info.timestamps[0]) * info.time_base) for t in info.timestamps]
    assert info.variable_frame_rate and seconds == pytest.approx([t / 10 for t in ticks], abs=1e-3)


def test_gray_keyframe_without_reference_is_a_usage_error(clips, tmp_path, capsys):
    code, _, err = _run(capsys, clips["gray"], "--keyframe", "2", "-o", tmp_path / "o.mp4", *FAST)
    assert code == EXIT_USAGE and "the clip is gray" in err
    code, _, err = _run(capsys, clips["gray"], "-o", tmp_path / "o.mp4", *FAST)
    assert code == EXIT_USAGE and "--reference" in err
    code, _, err = _run(capsys, clips["gray"], "-r", clips["reference"], "-o",
                        tmp_path / "o.gif", *FAST)
    assert code == EXIT_USAGE and "unsupported suffix '.gif'" in err
    assert list(tmp_path.iterdir()) == []


def test_truncated_and_single_frame_inputs_exit_4(clips, tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    data = clips["colour"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    code, _, err = _run(capsys, cut, "-r", clips["reference"], "-o", tmp_path / "o.mp4", *FAST)
    assert code == EXIT_INPUT and "cut.mp4: not a readable video file" in err
    one = tmp_path / "one.mp4"
    write_video(one, iter([torch.rand(3, 64, 96)]), fps=12)
    code, _, err = _run(capsys, one, "-r", clips["reference"], "-o", tmp_path / "o.mp4", *FAST)
    assert code == EXIT_INPUT and "holds 1 frame(s); at least 2 are needed" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "one.mp4"]


def test_folder_of_frames_with_a_differing_size(tmp_path, capsys, clips):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, frame in enumerate(chelsea_frames(3)):
        Image.fromarray(frame if i < 2 else frame[:60]).save(folder / f"{i}.png")
    code, _, err = _run(capsys, folder, "-r", clips["reference"], "-o", tmp_path / "o", *FAST)
    assert code == EXIT_INPUT and "2.png is 96x60, the first frame 0.png is 96x64" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_interrupted_run_leaves_nothing(clips, tmp_path, capsys, monkeypatch):
    real = deepexemplar_core.schedule.colorize_iter

    def colorize_then_interrupt(*args, **kwargs):
        for number, done in enumerate(real(*args, **kwargs)):
            if number == 4:
                raise KeyboardInterrupt
            yield done

    monkeypatch.setattr(deepexemplar_core.schedule, "colorize_iter", colorize_then_interrupt)
    out = tmp_path / "out.mp4"
    code, _, err = _run(capsys, clips["colour"], "--keyframe", "0", "-o", out, "--temporal",
                        "off", *FAST)
    assert code == EXIT_INTERRUPTED and "interrupted after 4 frames" in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_leaves_nothing(tmp_path):
    """A real SIGTERM to a running ``deepexemplar video`` process: exit 143, no file left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    clip = make_clip(tmp_path / "long.mp4", count=24, audio=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, "-m", "deepexemplar_core", "video", str(clip), "--keyframe", "0", "-o",
         str(out_dir / "out.mp4"), "--temporal", "off", "--chunk", "1", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 180
    while not list(out_dir.iterdir()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the temporary output file exists: encoding has started
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_TERMINATED, err.decode()
    assert b"nothing was written" in err
    assert list(out_dir.iterdir()) == []
