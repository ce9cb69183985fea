"""Training: both losses fall, an interrupted run resumes exactly, 2-process DDP = 1 process."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import pytest
import torch

from training import train as train_module
from training.dataset import PairShards
from training.perceptual import LiteFeatures
from training.train import TrainConfig, _step, branch_losses, encode_batch, train

SIZE = 32  # training crop of the 64 px fixture pairs: seconds per step on a shared CPU


def _config(pairs_dir, out, **kw) -> TrainConfig:
    base = dict(pairs=str(pairs_dir), out=str(out), steps=4, size=SIZE, batch=4, workers=0,
                checkpoint_every=2, progress=False, threads=1, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def _state(out) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]


def test_both_losses_decrease_on_a_fixed_batch(pairs_dir):
    from deepexemplar_core import ExampleColorNet

    torch.manual_seed(0)
    data = PairShards(pairs_dir, crop=48)
    items = [data[i] for i in range(4)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    net = ExampleColorNet().train()
    features = LiteFeatures()
    config = TrainConfig(pairs="", out="", lr=1e-3, alpha=0.005)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ddp = train_module._Dist()
    history = [_step(net, net, batch, features, optimizer, scaler, config, torch.device("cpu"),
                     None, 1, 2, ddp) for _ in range(6)]
    with torch.no_grad():
        chrom, perc = branch_losses(net(encode_batch(batch, 2)), batch, 2, features)
    assert float(chrom) < history[0][0] * 0.9, (history, float(chrom))
    assert float(perc) < history[0][1] * 0.9, (history, float(perc))


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(pairs_dir, tmp_path, monkeypatch):
    train(_config(pairs_dir, tmp_path / "straight"))
    calls = {"n": 0}
    real_step = train_module._step

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(_config(pairs_dir, tmp_path / "resumed"))
    monkeypatch.setattr(train_module, "_step", real_step)
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 2
    with pytest.raises(ValueError, match="--resume"):
        train(_config(pairs_dir, tmp_path / "resumed"))
    train(_config(pairs_dir, tmp_path / "resumed", resume=True))
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "resumed" / "loss.png").stat().st_size > 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, config: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    train(TrainConfig(**config))


def test_two_process_gloo_ddp_equals_one_process(pairs_dir, tmp_path):
    """Global batch 4: two processes with 2 pairs each = one process with two chunks of 2."""
    import torch.multiprocessing as mp

    single = _config(pairs_dir, tmp_path / "single", steps=2, micro_batch=2)
    train(single)
    ddp = dataclasses.asdict(_config(pairs_dir, tmp_path / "ddp", steps=2))
    mp.spawn(_ddp_worker, args=(2, _free_port(), ddp), nprocs=2, join=True)
    a, b = _state(tmp_path / "single"), _state(tmp_path / "ddp")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["world_size"] == 2 and config["trained_on_backbone"] == "lite"
    # only the run's files: no temporary file of the atomic writes is left behind
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "checkpoint.pt", "config.json", "loss.png", "metrics.jsonl"]


def test_vgg19_relu5_1_features_from_a_torchvision_state_file(tmp_path):
    """--vgg19 FILE: a torchvision VGG19 state dict gives frozen relu5_1 features (stride 16)."""
    from safetensors.torch import save_file
    from torchvision.models.vgg import cfgs, make_layers

    from training.perceptual import VGG19Features, load_perceptual

    torch.manual_seed(0)
    layers = make_layers(cfgs["E"])
    save_file({f"features.{k}": v for k, v in layers.state_dict().items()}, tmp_path / "vgg19.safetensors")
    features = load_perceptual(tmp_path / "vgg19.safetensors")
    assert isinstance(features, VGG19Features) and features.name == "vgg19 relu5_1"
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    y = features(x)
    assert tuple(y.shape) == (1, 512, 2, 2) and bool((y >= 0).all())
    y.sum().backward()
    assert x.grad.abs().sum() > 0 and not any(p.requires_grad for p in features.parameters())
    expected = layers[:30](((x.detach() - features.mean) / features.std))
    torch.testing.assert_close(features(x.detach()), expected)
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="torchvision vgg19"):
        load_perceptual(tmp_path / "bad.safetensors")
