"""Peak memory of streaming colorization against the number of frames (prepared reference).

Each frame count runs in a fresh process: frames (a real photo panned a little each frame, gray,
256 px working size) come from a generator, go through ``colorize_iter`` with a prepared
reference, and are dropped after a checksum, as a video writer would. Peak resident memory
(``ru_maxrss``) should not grow with the number of frames.

    .venv/bin/python benchmarks/bm_stream_memory.py [--frames 50 400] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def _child(frames: int, size: int, device: str) -> dict:
    import torch
    from skimage import data, transform

    from deepexemplar_core import ColorizeConfig, colorize_iter, load_models, prepare_reference

    torch.set_num_threads(os.cpu_count() or 1)
    photo = transform.resize(data.astronaut(), (360, 480), anti_aliasing=True)
    rgb = torch.from_numpy(photo.transpose(2, 0, 1).copy()).float()
    models = load_models("lite", device=device)
    config = ColorizeConfig(size=size)
    prepared = prepare_reference(models, rgb, config)
    gray = rgb.mean(0, keepdim=True)

    def clip():
        for t in range(frames):
            yield gray.roll(t % 24, dims=-1)

    start, checksum, count = time.perf_counter(), 0.0, 0
    for done in colorize_iter(clip(), prepared, models, config, chunk_size=8, output_device="cpu"):
        checksum += float(done.image[:, ::64, ::64].sum())
        count += 1
    seconds = time.perf_counter() - start
    return {"frames": count, "seconds": seconds, "fps": count / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 400])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.size, args.device)))
        return
    rows = []
    for frames in args.frames:
        out = subprocess.run([sys.executable, __file__, "--child", str(frames), "--size",
                              str(args.size), "--device", args.device],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
          f"device {args.device}")
    print("| frames | working size | seconds | frames/s | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['frames']} | {args.size} | {row['seconds']:.1f} | {row['fps']:.2f} | "
              f"{row['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
