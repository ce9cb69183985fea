"""CUDA vs C++ parity of the matching kernels on realistic sizes (run by scripts/gpu_check.sh).

Cases: random (smoothed noise) and photo-derived features (3x3 colour patches of skimage's
astronaut and chelsea through a fixed random projection + ReLU, 128 channels, so neighbouring
pixels correlate as VGG activations do), at relu2_1 of a 256 px pair (128x128) and of a 1080p
input at working size 540 (270x480) and full size (540x960). For each: window search (R 4,
patch 3 and 5) and PatchMatch (T 10, R 4, patch 3) from a coarse-like start field, float32 and
float16, with the warp-per-pixel and the thread-per-pixel kernels ($DEEPEXEMPLAR_CUDA_LANES). Prints one line per case: % equal matches, max |score difference|; exits 1 if a case
has < 99.9 % equal matches (float32) / < 99 % (float16 vs float32 on the same rounded inputs)
or a score difference above 1e-5 (float32) / 1e-3 (float16).

    python scripts/gpu_parity.py [--small] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

from deepexemplar_core.matching import extension, patchmatch, window_search

SIZES = {"256px relu2_1": (128, 128), "1080p@540 relu2_1": (270, 480), "1080p relu2_1": (540, 960)}


def photo_features(name: str, h: int, w: int, channels: int = 128, seed: int = 0) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(getattr(data, name)().copy()).float().permute(2, 0, 1)[None] / 255
    img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    patches = F.unfold(F.pad(img, (1, 1, 1, 1), mode="replicate"), 3).view(1, 27, h, w)
    proj = torch.randn(channels, 27, generator=torch.Generator().manual_seed(seed))
    feats = F.relu(torch.einsum("oc,bchw->bohw", proj, patches - 0.5)) + 1e-3
    return F.normalize(feats, dim=1)


def random_features(h: int, w: int, seed: int, channels: int = 128) -> torch.Tensor:
    x = torch.randn(1, channels, h, w, generator=torch.Generator().manual_seed(seed))
    return F.normalize(F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1), dim=1)


def start_field(h: int, w: int, seed: int) -> torch.Tensor:
    """Upsampled-coarse-like start: one random offset in [-8, 8] per 2x2 block."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(-8, 9, (1, (h + 1) // 2, (w + 1) // 2, 2), generator=gen)
    off = coarse.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :h, :w]
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
    return grid + off


def compare(name, cpu, gpu, dtype) -> dict:
    equal = (gpu[0].cpu() == cpu[0]).all(-1).float().mean().item()
    diff = (gpu[1].cpu() - cpu[1]).abs().max().item()
    need_eq, need_diff = (0.999, 1e-5) if dtype == torch.float32 else (0.99, 1e-3)
    ok = equal >= need_eq and diff <= need_diff
    print(f"{'ok ' if ok else 'BAD'} {name:<58} equal {equal:8.4%}  max|dscore| {diff:.2e}", flush=True)
    return {"case": name, "equal": equal, "max_score_diff": diff, "ok": ok}


def run_case(label, a, b, init, dtype) -> list[dict]:
    """C++ once, then CUDA with the warp-per-pixel and the thread-per-pixel kernels."""
    ac, bc = a.to(dtype).float(), b.to(dtype).float()  # the CPU sees the same rounded values
    ag, bg, ig = a.to("cuda", dtype), b.to("cuda", dtype), init.cuda()
    kw = dict(patch_size=3, iterations=10, radius=4, seed=3, level=1)
    cases = {
        f"window R4 k{k}": (
            lambda s, t, f, be, k=k: window_search(s, t, f, patch_size=k, radius=4, backend=be))
        for k in (3, 5)
    }
    cases["patchmatch T10 R4 k3"] = lambda s, t, f, be: patchmatch(s, t, f, backend=be, **kw)
    rows = []
    for name, fn in cases.items():
        cpu = fn(ac, bc, init, "cpp")
        for lanes in ("32", "1"):  # $DEEPEXEMPLAR_CUDA_LANES
            os.environ["DEEPEXEMPLAR_CUDA_LANES"] = lanes
            gpu = fn(ag, bg, ig, "cuda")
            rows.append(compare(f"{label} {name} L{lanes} {dtype}", cpu, gpu, dtype))
    os.environ.pop("DEEPEXEMPLAR_CUDA_LANES", None)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="one 24x40 case (for compute-sanitizer)")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    plan = extension.build()
    if not (torch.cuda.is_available() and plan.with_cuda):
        print(f"no CUDA build ({plan.reason})")
        return 2
    rows = []
    sizes = {"small": (24, 40)} if args.small else SIZES
    for label, (h, w) in sizes.items():
        dtypes = (torch.float32,) if args.small else (torch.float32, torch.float16)
        for dtype in dtypes:
            a, b = random_features(h, w, 1), random_features(h, w, 2)
            rows += run_case(f"{label} random", a, b, start_field(h, w, 3), dtype)
            if not args.small:
                a, b = photo_features("astronaut", h, w), photo_features("chelsea", h, w)
                rows += run_case(f"{label} photo", a, b, start_field(h, w, 4), dtype)
    if args.small:  # odd channel count and batch broadcast: the scalar-load kernels
        a = F.normalize(torch.randn(3, 5, 13, 17), dim=1)
        b = F.normalize(torch.randn(1, 5, 11, 9), dim=1)
        cpu = patchmatch(a, b, None, patch_size=3, iterations=3, radius=11, backend="cpp")
        for lanes in ("32", "1"):
            os.environ["DEEPEXEMPLAR_CUDA_LANES"] = lanes
            gpu = patchmatch(a.cuda(), b.cuda(), None, patch_size=3, iterations=3, radius=11,
                             backend="cuda")
            rows.append(compare(f"odd C=5, batch 3 vs 1, patchmatch L{lanes}", cpu, gpu, torch.float32))
        os.environ.pop("DEEPEXEMPLAR_CUDA_LANES")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    bad = [r for r in rows if not r["ok"]]
    print(f"parity: {len(rows) - len(bad)}/{len(rows)} cases ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
