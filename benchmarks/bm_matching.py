"""Benchmark of dense matching per level and in total, for each available backend.

Runs ``deepexemplar_core.matching.dense_match`` (default schedule, both directions) on a
target/reference pair of gray-VGG-shaped pyramids (relu1_1..relu5_1: 64, 128, 256, 512, 512
channels at strides 1..16) and times every matched level and the total, per backend: the
PyTorch reference (``torch``), the C++ kernels (``cpp``, ``--threads`` threads) and the CUDA
kernels (``cuda``, when a GPU and a CUDA build are present). It also times the single ops at the
relu2_1 level (one direction): window search (R 4, patch 3 and 5) and PatchMatch (T 10, R 4).

The features are RANDOM (smoothed Gaussian noise, L2-normalised), not VGG activations: the
timings depend on shapes only, except for the few data-dependent shortcuts of the kernels.

Sizes: ``256`` and ``512`` (square working images), ``1080p@540`` (a 1920x1080 input at working
short side 540: relu2_1 is 270x480) and ``1080p`` (full resolution: relu2_1 540x960).

    python benchmarks/bm_matching.py --sizes 256,512 --threads 2
    python benchmarks/bm_matching.py --device cuda --sizes 256,512,1080p@540,1080p
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from deepexemplar_core.matching import MatchConfig, dense_match
from deepexemplar_core.matching import extension, patchmatch, window_search
from deepexemplar_core.structures import FeaturePyramid

SIZES = {"256": (256, 256), "512": (512, 512), "1080p@540": (540, 960), "1080p": (1080, 1920)}
CHANNELS = (64, 128, 256, 512, 512)
STRIDES = (1, 2, 4, 8, 16)
NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def random_pyramid(size: tuple[int, int], device: torch.device, seed: int) -> FeaturePyramid:
    """Smoothed random features of the gray-VGG shapes (relu1_1 is a broadcast placeholder)."""
    gen = torch.Generator().manual_seed(seed)
    feats = []
    for c, s in zip(CHANNELS, STRIDES):
        h, w = size[0] // s, size[1] // s
        if s == 1:  # never matched by the default schedule: no memory for it
            feats.append(torch.ones(1, c, 1, 1, device=device).expand(1, c, h, w))
            continue
        x = torch.randn(1, c, h, w, generator=gen)
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        feats.append(F.relu(x).to(device))
    return FeaturePyramid(tuple(feats), STRIDES, NAMES, size)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Median wall time in ms over ``repeat`` runs after one warm-up."""
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def time_dense(size_name: str, backend: str, device: torch.device, repeat: int) -> dict:
    """Per-level and total ms of dense_match; levels are synchronised through ``progress``."""
    tgt = random_pyramid(SIZES[size_name], device, 1)
    ref = random_pyramid(SIZES[size_name], device, 2)
    config = MatchConfig.default_for(tgt, backend=backend)
    names = list(config.levels)
    runs: list[dict[str, float]] = []
    for i in range(repeat + 1):
        marks: list[float] = []
        sync(device)
        start = time.perf_counter()

        def progress(done: int, total: int) -> None:
            sync(device)
            marks.append(time.perf_counter())

        corr = dense_match(tgt, ref, config, progress=progress)
        sync(device)
        end = time.perf_counter()
        edges = [start, *marks]
        row = {n: (edges[j + 1] - edges[j]) * 1e3 for j, n in enumerate(names)}
        row["total"] = (end - start) * 1e3
        if i > 0:  # the first run is a warm-up
            runs.append(row)
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["methods"] = {n: f"{lc.method} R{lc.radius} k{lc.patch_size}" for n, lc in config.levels.items()}
    out["backend_used"] = corr.backend
    return out


def time_ops(size_name: str, backend: str, device: torch.device, repeat: int) -> dict:
    """ms of the single ops at relu2_1 (one direction), start field = upsampled-like offsets."""
    tgt = random_pyramid(SIZES[size_name], device, 1).features[1]
    ref = random_pyramid(SIZES[size_name], device, 2).features[1]
    a, b = F.normalize(tgt, dim=1), F.normalize(ref, dim=1)
    h, w = a.shape[2:]
    gen = torch.Generator().manual_seed(3)
    coarse = torch.randint(-8, 9, (1, (h + 1) // 2, (w + 1) // 2, 2), generator=gen)
    offsets = coarse.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :h, :w]
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
    init = (grid + offsets).to(device)
    cases = {
        "window R4 k3": lambda: window_search(a, b, init, patch_size=3, radius=4, backend=backend),
        "window R4 k5": lambda: window_search(a, b, init, patch_size=5, radius=4, backend=backend),
        "patchmatch T10 R4 k3": lambda: patchmatch(a, b, init, patch_size=3, iterations=10,
                                                   radius=4, backend=backend),
    }
    if backend != "cuda":
        return {name: time_it(fn, device, repeat) for name, fn in cases.items()}
    out = {}
    for lanes in ("32", "1"):  # warp per pixel / thread per pixel ($DEEPEXEMPLAR_CUDA_LANES)
        os.environ["DEEPEXEMPLAR_CUDA_LANES"] = lanes
        out.update({f"{name} L{lanes}": time_it(fn, device, repeat) for name, fn in cases.items()})
    os.environ.pop("DEEPEXEMPLAR_CUDA_LANES")
    return out


def machine_info(device: torch.device, threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return (f"torch {torch.__version__}, CPU {cpu} ({threads} threads), GPU {gpu}, "
            f"float32, random gray-VGG-shaped features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512", help=f"comma list of {list(SIZES)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--backends", default="", help="comma list (default: torch + compiled)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median), after a warm-up")
    parser.add_argument("--torch-max-pixels", type=int, default=300_000,
                        help="skip the PyTorch reference above this relu2_1 pixel count")
    parser.add_argument("--no-ops", action="store_true", help="skip the single-op rows")
    parser.add_argument("--json", help="also write all numbers to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    compiled = "cuda" if device.type == "cuda" else "cpp"
    try:
        extension.build()
    except RuntimeError as e:
        print(f"compiled extension unavailable ({str(e).splitlines()[0]}); timing torch only")
        compiled = None
    backends = args.backends.split(",") if args.backends else ["torch"] + ([compiled] if compiled else [])
    print(machine_info(device, args.threads))
    results: dict = {"machine": machine_info(device, args.threads), "rows": []}
    for size_name in args.sizes.split(","):
        h, w = SIZES[size_name]
        pixels = (h // 2) * (w // 2)
        base = None
        for backend in backends:
            if backend == "torch" and pixels > args.torch_max_pixels:
                print(f"{size_name:>10} {backend:>5}: skipped (relu2_1 has {pixels} px > --torch-max-pixels)")
                continue
            row = {"size": size_name, "backend": backend, **time_dense(size_name, backend, device, args.repeat)}
            if not args.no_ops:
                row["ops_relu2_1"] = time_ops(size_name, backend, device, args.repeat)
            if backend == "torch":
                base = row
            results["rows"].append(row)
            levels = "  ".join(f"{n} {row[n]:8.1f}" for n in row["methods"])
            speed = f"  x{base['total'] / row['total']:.1f} vs torch" if base and backend != "torch" else ""
            print(f"{size_name:>10} {backend:>5}: {levels}  total {row['total']:9.1f} ms{speed}")
            if not args.no_ops:
                ops = "  ".join(f"{k} {v:8.1f}" for k, v in row["ops_relu2_1"].items())
                print(f"{'':>10} {'':>5}  relu2_1 ops (ms, one direction): {ops}")
        print(f"{'':>10} methods: {results['rows'][-1]['methods'] if results['rows'] else ''}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
