"""Where the commands write: an unwritable video output is refused before any work, an odd-size
video says it will be cropped, a frames folder gets the usual permissions, and a second
``colorize`` into the same folder says what it replaced or keeps it (issue 17, items 13, 15)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from video_clips import chelsea_frames, make_clip

from deepexemplar_core.cli import EXIT_INPUT, EXIT_OK, main
from deepexemplar_core.cli import video as video_command
from deepexemplar_core.video import write_frame_folder

FAST = ["--size", "64", "--quiet", "--device", "cpu", "--temporal", "off"]


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody can create files in: ``/sys`` for root (permissions do not stop root),
    else a folder with mode 0555."""
    if os.geteuid() == 0:
        if not os.path.isdir("/sys") or os.access("/sys", os.W_OK) and _can_create("/sys"):
            pytest.skip("running as root without a read-only folder to write into")
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def _can_create(folder: str) -> bool:
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def test_video_into_a_read_only_folder_exits_4_before_loading_models(tmp_path, capsys, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4", count=3, audio=False)
    loaded = []
    real = video_command.load_models_from_args
    monkeypatch.setattr(video_command, "load_models_from_args",
                        lambda args: loaded.append(1) or real(args))
    for output in ("out.mp4", "frames"):
        target = _read_only_folder(tmp_path) / output
        code = main(["video", str(clip), "--keyframe", "0", "-o", str(target), *FAST])
        err = capsys.readouterr().err
        assert code == EXIT_INPUT, err
        assert "not writable" in err and str(target.parent) in err, err
    assert loaded == []


def test_an_odd_video_size_is_announced_before_the_work(tmp_path, capsys, caplog):
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in chelsea_frames(2, 95, 63)]
    write_frame_folder(tmp_path / "odd", iter(frames))
    code = main(["video", str(tmp_path / "odd"), "--keyframe", "0", "-o",
                 str(tmp_path / "out.mp4"), "--fps", "10", *FAST])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    assert ("warning: the frames are 95x63; the video will be cropped to 94x62 (4:2:0 H.264 "
            "needs even sides); write a folder of PNG frames to keep every pixel") in err, err
    assert err.count("94x62") == 1, err
    # said once: the writer only notes it (a warning of its own printed it a second time)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_frames_folder_gets_the_usual_permissions(tmp_path):
    frames = [torch.rand(3, 8, 10) for _ in range(2)]
    mask = os.umask(0o022)
    try:
        folder = write_frame_folder(tmp_path / "frames", iter(frames)).path
    finally:
        os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())


@pytest.fixture()
def pair(tmp_path, chelsea_rgb):
    rgb = (chelsea_rgb.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)[:96, :128]
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b"):
        gray = np.asarray(Image.fromarray(np.roll(rgb, 7 * ord(name), axis=1)).convert("L"))
        Image.fromarray(gray).save(photos / f"{name}.png")
    Image.fromarray(rgb).save(tmp_path / "ref.png")
    return tmp_path


def _colorize(pair: Path, *extra: str) -> list[str]:
    return ["colorize", str(pair / "photos"), "-r", str(pair / "ref.png"), "-o",
            str(pair / "out"), "--size", "64", "--family", "lite", "--quiet", *extra]


def test_a_second_run_into_one_folder_says_replaced_or_keeps_with_skip_existing(pair, capsys):
    assert main(_colorize(pair)) == EXIT_OK
    first = capsys.readouterr()
    assert "replaced" not in first.out + first.err
    out = pair / "out"
    a, b = out / "a_colorized.png", out / "b_colorized.png"
    b.unlink()
    a.write_bytes(b"mine")  # an earlier result, changed by hand: --skip-existing keeps it
    assert main(_colorize(pair, "--skip-existing", "--json")) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["kept"] == [str(pair / "photos" / "a.png")] and summary["replaced"] == []
    assert summary["written"] == [str(b)]
    assert a.read_bytes() == b"mine" and b.stat().st_size > 1000
    assert main(_colorize(pair, "--json")) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["replaced"] == [str(a), str(b)] and summary["kept"] == []
    assert [r["replaced"] for r in summary["results"]] == [True, True]
    assert a.read_bytes() != b"mine"
    assert main(_colorize(pair)) == EXIT_OK
    captured = capsys.readouterr()
    assert f"{pair / 'photos' / 'a.png'} -> {a} (replaced," in captured.out, captured.out
    assert "2 written (2 replaced)" in captured.err, captured.err


def test_skip_existing_with_every_output_there_loads_no_model(pair, capsys, monkeypatch):
    from deepexemplar_core.cli import colorize as colorize_command

    assert main(_colorize(pair)) == EXIT_OK
    capsys.readouterr()

    def no_models(args):
        raise AssertionError("models loaded although every output is kept")

    monkeypatch.setattr(colorize_command, "load_models_from_args", no_models)
    assert main(_colorize(pair, "--skip-existing", "--json")) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == [] and len(summary["kept"]) == 2 and summary["family"] is None
