"""A user's mistakes on the ``training`` command lines."""

from __future__ import annotations

import logging
import re

import pytest

from training import evaluate


@pytest.mark.parametrize("size", ["0", "-8", "16"])
def test_evaluate_refuses_a_size_below_32_without_a_traceback(tmp_path, caplog, size):
    """``--size 0`` ended in a RuntimeError from the resize (0 is "native" to ColorizeConfig)."""
    from PIL import Image

    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.new("RGB", (40, 36), (200, 60 * i, 30)).save(tmp_path / "photos" / f"{i}.png")
    with caplog.at_level(logging.ERROR):
        code = evaluate.main(["--weights", str(tmp_path / "w.safetensors"),
                              "--images", str(tmp_path / "photos"), "--size", size])
    assert code == 2
    assert f"size: expected the side of the square photos, 32..2048 pixels, got {size}" in caplog.text


def test_evaluate_size_0_with_real_weights_ends_in_the_message(tmp_path, caplog):
    """With readable weights the run got as far as the resize, which raised a RuntimeError."""
    from PIL import Image
    from safetensors.torch import save_file

    from deepexemplar_core.colorizers import ExampleColorNet

    save_file(ExampleColorNet().state_dict(), str(tmp_path / "example_net.safetensors"))
    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.new("RGB", (40, 36), (200, 60 * i, 30)).save(tmp_path / "photos" / f"{i}.png")
    with caplog.at_level(logging.ERROR):
        code = evaluate.main(["--weights", str(tmp_path / "example_net.safetensors"),
                              "--images", str(tmp_path / "photos"), "--size", "0"])
    assert code == 2
    assert "32..2048 pixels, got 0" in caplog.text


def test_sigterm_during_training_writes_the_checkpoint_and_exits_143(pairs_dir, tmp_path,
                                                                      monkeypatch, caplog):
    """A scheduler's SIGTERM killed the run without a checkpoint (progress since the last one
    lost, a half-written temporary checkpoint possible); now it unwinds like Ctrl-C."""
    import os
    import signal

    import torch

    from training import train as train_module

    calls = {"n": 0}
    real_step = train_module._step

    def terminated_at_third_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "_step", terminated_at_third_step)
    out = tmp_path / "run"
    argv = ["--pairs", str(pairs_dir), "--out", str(out), "--steps", "6", "--size", "32",
            "--batch", "4", "--workers", "0", "--checkpoint-every", "100", "--no-progress",
            "--threads", "1"]
    before = signal.getsignal(signal.SIGTERM)
    with caplog.at_level(logging.WARNING):
        assert train_module.main(argv) == 143
    assert signal.getsignal(signal.SIGTERM) is before
    assert "checkpoint written, resume with --resume" in caplog.text
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "config.json", "loss.png", "metrics.jsonl"]


def test_resume_without_a_checkpoint_says_how_to_start(pairs_dir, tmp_path, caplog):
    from training import train as train_module

    with caplog.at_level(logging.ERROR):
        code = train_module.main(["--pairs", str(pairs_dir), "--out", str(tmp_path / "new"),
                                  "--resume", "--workers", "0"])
    assert code == 2
    assert "run the same command without --resume to start it" in caplog.text


@pytest.mark.parametrize("step", ["train", "pairs", "export", "registry_photos"])
def test_an_output_folder_under_a_file_is_named_before_any_work(step, pairs_dir, photo_dir,
                                                                 tmp_path, caplog):
    """Each step ended in a FileExistsError/NotADirectoryError traceback from mkdir."""
    import importlib

    (tmp_path / "taken").write_text("mine")
    out = str(tmp_path / "taken" / "sub")
    argv = {
        "train": ["--pairs", str(pairs_dir), "--out", out, "--workers", "0"],
        "pairs": ["--images", str(photo_dir), "--out", out, "--size", "64"],
        "export": [str(tmp_path / "run"), "-o", out],
        "registry_photos": ["--out", out],
    }[step]
    with caplog.at_level(logging.ERROR):
        code = importlib.import_module(f"training.{step}").main(argv)
    assert code == 2
    assert f"{tmp_path / 'taken'} is a file, not a folder; choose a folder" in caplog.text
    assert (tmp_path / "taken").read_text() == "mine"


def test_registry_photos_names_a_missing_opencv_root(tmp_path, caplog):
    from training import registry_photos

    with caplog.at_level(logging.ERROR):
        code = registry_photos.main(["--opencv-root", str(tmp_path / "nowhere"),
                                     "--out", str(tmp_path / "photos")])
    assert code == 2
    assert "has no usr/share/doc/opencv-doc; unpack the package there" in caplog.text
    assert not (tmp_path / "photos").exists()


@pytest.mark.parametrize(("option", "value", "low"), [
    ("--checkpoint-every", "0", 1), ("--log-every", "0", 1), ("--workers", "-1", 0),
    ("--threads", "-1", 0), ("--clip", "-1", 0), ("--max-minutes", "-1", 0)])
def test_train_names_an_out_of_range_option(option, value, low, tmp_path, caplog):
    """0 for the two periods ended in ZeroDivisionError, --threads -1 in a RuntimeError, --workers
    -1 in DataLoader's message; --clip -1 and --max-minutes -1 were taken silently."""
    from training import train as train_module

    with caplog.at_level(logging.ERROR):
        code = train_module.main(["--pairs", str(tmp_path / "pairs"), "--out",
                                  str(tmp_path / "run"), option, value])
    assert code == 2
    assert re.search(rf"{option}: expected >= {low}, got {value}(\.0)?\n", caplog.text)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("extra", "said"), [
    (["--threads", "-1"], "--threads: expected >= 0, got -1"),
    (["--table-out", "taken/t.md"], "--table-out: taken is a file, not a folder"),
    (["--json-out", "taken/r.json"], "--json-out: taken is a file, not a folder")])
def test_evaluate_refuses_bad_options_before_evaluating(extra, said, tmp_path, caplog,
                                                        monkeypatch):
    """--threads -1 was a RuntimeError traceback; an unwritable --table-out one after the whole
    evaluation."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("mine")
    with caplog.at_level(logging.ERROR):
        code = evaluate.main(["--weights", "w.safetensors", "--images", "photos", *extra])
    assert code == 2
    assert said in caplog.text


def test_export_with_a_missing_eval_table_writes_nothing(tmp_path, caplog):
    """It failed with FileNotFoundError after writing the weights, manifest and plot."""
    from training import export

    with caplog.at_level(logging.ERROR):
        code = export.main([str(tmp_path / "run"), "-o", str(tmp_path / "out"),
                            "--eval-table", str(tmp_path / "table.md")])
    assert code == 2
    assert f"--eval-table: {tmp_path / 'table.md'} is not a file" in caplog.text
    assert not (tmp_path / "out").exists()


def test_python_m_training_lists_the_steps(capsys):
    """``python -m training`` was 'No module named training.__main__'."""
    from training.__main__ import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"training.{step}" in out for step in ("pairs", "train", "export", "evaluate"))
    assert main(["train"]) == 2
    assert "run one step, e.g. python -m training.train" in capsys.readouterr().err
