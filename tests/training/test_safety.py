"""What a careless or hostile file does to the training commands: a planted pickle is never run,
truncated checkpoints and shards are named with the fix, an export never overwrites silently,
an unreachable Hub leaves the export on disk (issue 17, items 1-6)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import export as export_module
from training import train as train_module
from training.dataset import PairShards
from training.pairs import build_pairs
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]


def _train_args(pairs_dir, out, *extra) -> list[str]:
    return ["--pairs", str(pairs_dir), "--out", str(out), "--steps", "1", "--size", "32",
            "--batch", "2", "--workers", "0", "--threads", "1", "--no-progress", *extra]


@pytest.fixture(scope="module")
def run_dir(pairs_dir, tmp_path_factory) -> Path:
    """A finished one-step run (checkpoint, config, metrics, plot)."""
    run = tmp_path_factory.mktemp("run")
    train(TrainConfig(pairs=str(pairs_dir), out=str(run), steps=1, size=32, batch=2, workers=0,
                      progress=False, threads=1))
    return run


class _Payload:
    """Unpickling this creates ``marker`` (what a planted payload could do with any command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(run_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    marker = tmp_path / "payload-ran"
    state = {"model": {}, "step": 1, "config": {}, "evil": _Payload(marker)}
    torch.save(state, run / "checkpoint.pt")
    return run, marker


def test_a_planted_pickle_is_never_run(run_dir, pairs_dir, tmp_path, caplog):
    run, marker = _plant(run_dir, tmp_path)
    # the payload is real: full unpickling runs it
    torch.load(run / "checkpoint.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()
    with caplog.at_level(logging.ERROR):
        assert export_module.main([str(run), "-o", str(tmp_path / "export")]) == 2
        assert train_module.main(_train_args(pairs_dir, run, "--resume", "--steps", "2")) == 2
    assert not marker.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    for message in errors:
        assert str(run / "checkpoint.pt") in message and "not loaded" in message, message
    assert not (tmp_path / "export").exists()


def test_a_truncated_checkpoint_names_the_file_and_the_restart(run_dir, pairs_dir, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.ERROR):
        assert train_module.main(_train_args(pairs_dir, run, "--resume", "--steps", "2")) == 2
        assert export_module.main([str(run), "-o", str(tmp_path / "export")]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    for message in errors:
        assert f"{run / 'checkpoint.pt'} is damaged" in message, message
        assert "restart" in message and "without --resume" in message, message


def test_the_checkpoint_holds_only_tensors_and_plain_values(run_dir):
    """``weights_only=True`` with no allow-list reads it, RNG states included."""
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 1 and set(state["rng"][0]) >= {"torch", "numpy", "python"}


def test_export_refuses_to_overwrite_without_overwrite(run_dir, tmp_path, caplog):
    out = tmp_path / "export"
    out.mkdir()
    (out / "README.md").write_text("my own notes\n")
    (out / "other.txt").write_text("kept\n")
    with caplog.at_level(logging.ERROR):
        assert export_module.main([str(run_dir), "-o", str(out)]) == 2
    assert "README.md" in caplog.text and "--overwrite" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "other.txt"]
    assert (out / "README.md").read_text() == "my own notes\n"
    assert export_module.main([str(run_dir), "-o", str(out), "--overwrite"]) == 0
    assert (out / "README.md").read_text().startswith("---\n")
    assert (out / "other.txt").read_text() == "kept\n"
    # an empty or new folder needs no flag
    assert export_module.main([str(run_dir), "-o", str(tmp_path / "new")]) == 0


def test_push_with_the_hub_unreachable_keeps_the_export(run_dir, tmp_path):
    """A closed local port as the Hub: a one-line message, exit 3, the export stays."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    out = tmp_path / "export"
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_TOKEN="hf_test",
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "training.export", str(run_dir), "-o", str(out),
                           "--push-to-hub", "someone/model"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "could not reach the Hub or upload to it" in done.stderr and str(out) in done.stderr, done.stderr
    assert {"example_net.safetensors", "example_net.manifest.json", "README.md"} <= {
        p.name for p in out.iterdir()}


def _copy_pairs(pairs_dir: Path, tmp_path: Path) -> Path:
    pairs = tmp_path / "pairs"
    shutil.copytree(pairs_dir, pairs)
    return pairs


def _truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data


def test_a_truncated_shard_names_the_shard_and_the_fix(pairs_dir, tmp_path, caplog):
    pairs = _copy_pairs(pairs_dir, tmp_path)
    _truncate(pairs / "shard-00001.safetensors")
    with caplog.at_level(logging.ERROR):
        assert train_module.main(_train_args(pairs, tmp_path / "run")) == 2
    message = caplog.records[-1].getMessage()
    assert str(pairs / "shard-00001.safetensors") in message and "damaged" in message, message
    assert "python -m training.pairs" in message, message
    with pytest.raises(ValueError, match="shard-00001"):
        PairShards(pairs)


def test_rerunning_pairs_recomputes_a_truncated_shard(pairs_dir, photo_dir, tmp_path):
    from safetensors.torch import load_file

    pairs = _copy_pairs(pairs_dir, tmp_path)
    shard = pairs / "shard-00001.safetensors"
    original = load_file(pairs_dir / "shard-00001.safetensors")
    _truncate(shard)
    untouched = (pairs / "shard-00000.safetensors").stat().st_mtime_ns
    manifest = build_pairs(photo_dir, pairs, size=64, pairs_per_image=2, shard_size=4,
                           self_share=0.5, similar_share=0.5, top_k=2, seed=1)
    assert manifest["complete"] and manifest["pairs_matched_last_run"] == 4
    again = load_file(shard)
    assert again.keys() == original.keys()
    for key in original:
        assert torch.equal(again[key], original[key]), key
    assert (pairs / "shard-00000.safetensors").stat().st_mtime_ns == untouched
    assert len(PairShards(pairs)) == 8


def test_a_shard_name_leading_outside_the_pairs_folder_is_refused(pairs_dir, tmp_path, caplog):
    """A tampered manifest naming a shard outside the folder (here a valid shard): never read."""
    import json

    pairs = _copy_pairs(pairs_dir, tmp_path)
    shutil.copy(pairs / "shard-00001.safetensors", tmp_path / "elsewhere.safetensors")
    manifest = json.loads((pairs / "manifest.json").read_text())
    manifest["shards"][1]["file"] = "../elsewhere.safetensors"
    (pairs / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="outside the pairs folder"):
        PairShards(pairs)
    with caplog.at_level(logging.ERROR):
        assert train_module.main(_train_args(pairs, tmp_path / "run")) == 2
    assert "elsewhere.safetensors" in caplog.records[-1].getMessage()


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    """torch, numpy and Python RNGs continue exactly from a checkpoint read with weights_only."""
    import random

    import numpy as np

    from training._io import load_checkpoint, torch_save_atomic

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.standard_normal()  # a cached Gaussian is part of numpy's state
    torch_save_atomic({"model": {}, "step": 0, "rng": [train_module._rng_state()]},
                      tmp_path / "checkpoint.pt")
    expected = (torch.rand(3), np.random.random(3), np.random.standard_normal(), random.random())
    train_module._set_rng_state(load_checkpoint(tmp_path / "checkpoint.pt")["rng"][0])
    again = (torch.rand(3), np.random.random(3), np.random.standard_normal(), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2:] == again[2:]
