"""Benchmark of reference recommendation: query latency, memory per image, build throughput.

* **Query latency** at 1k, 10k and 100k indexed images. The indexed descriptors are SYNTHETIC
  (random unit vectors of the stored shapes and dtypes: global 128 float32, local 49 x 64
  float16, histograms 49 x 10 float16, random top classes among 1000): the ranking cost depends
  on shapes only. Timed: the search (global matrix product + local re-ranking of the top 200),
  with and without the class restriction, and the query's descriptor (one lite forward pass of a
  real photo at 224 x 224); end to end = descriptor + search.
* **Memory per indexed image**: bytes of the query-time tensors, and the Python memory of the
  manifest entries (measured with tracemalloc on 10k synthetic entries).
* **Build throughput**: ``build_index`` with the lite backbone on REAL photos (the registry's
  sample photos, flipped and cropped into distinct JPEG files of their original sizes), decode
  + luminance + forward + checkpoints + PCA + writing, in images per second, with
  ``torch.set_num_threads(t)`` for each ``t`` of ``--build-threads`` (on a busy machine one
  thread can beat two).

    python benchmarks/recommend.py --threads 2
    python benchmarks/recommend.py --sizes 1000,10000 --build-images 48 --device cuda

Prints a markdown table and the machine; timings on a shared machine vary with its load (the
load average before and after is printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_name
from deepexemplar_core.recommend import build_index, load_describer
from deepexemplar_core.recommend.query import _query_descriptors
from deepexemplar_core.recommend.search import QUERY_THREADS, Searchable, rank


def machine(device: torch.device) -> str:
    text = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_name()}), torch " \
           f"{torch.__version__}, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def synthetic(n: int, device: torch.device, seed: int = 0) -> Searchable:
    gen = torch.Generator().manual_seed(seed)
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1)
    hist = torch.rand(n, 49, 10, generator=gen)
    hist = torch.nn.functional.normalize(hist - hist.mean(-1, keepdim=True), dim=-1)
    return Searchable(torch.randint(0, 1000, (n, 5), generator=gen), unit(n, 128).to(device),
                      unit(n, 49, 64).half().to(device), hist.half().to(device))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_search(data: Searchable, queries: int, restrict: bool, device: torch.device) -> tuple[float, float]:
    """Median and fastest milliseconds of one search."""
    q_all = synthetic(queries, device, seed=1)
    times, cpu = [], []
    for i in range(queries + 2):
        j = i % queries
        query = Searchable(q_all.classes[j:j + 1], q_all.global_[j:j + 1], q_all.local[j:j + 1],
                           q_all.hist[j:j + 1])
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        rank(query, data, k=5, top_n=200, restrict_class=restrict, backend="torch")
        sync(device)
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return 1000 * statistics.median(times), 1000 * min(times), 1000 * statistics.median(cpu)


def registry_photos() -> list[np.ndarray]:
    import matplotlib
    import sklearn
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(),
              data.stereo_motorcycle()[0], data.hubble_deep_field(), data.retina()[..., :3],
              data.immunohistochemistry()]
    photos += [np.asarray(Image.open(Path(sklearn.__file__).parent / f"datasets/images/{n}.jpg"))
               for n in ("china", "flower")]
    photos.append(np.asarray(Image.open(
        Path(matplotlib.__file__).parent / "mpl-data/sample_data/grace_hopper.jpg")))
    return photos


def make_collection(folder: Path, count: int) -> None:
    """``count`` distinct JPEG files: registry photos, flipped and cropped differently."""
    from PIL import Image

    photos = registry_photos()
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        top, left = rng.integers(0, h // 6), rng.integers(0, w // 6)
        crop = photo[top:h - rng.integers(0, h // 6), left:w - rng.integers(0, w // 6)]
        if i % 2:
            crop = crop[:, ::-1]
        Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"photo_{i:05d}.jpg", quality=90)


def manifest_bytes_per_entry(n: int = 10_000) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    entries = [{"path": f"2019/holidays/IMG_{i:06d}.jpg", "size": 2_345_678 + i,
                "mtime_ns": 1_700_000_000_000_000_000 + i, "sha256": f"{i:064x}",
                "height": 3000, "width": 4000} for i in range(n)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del entries
    return (after - before) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="indexed images")
    parser.add_argument("--queries", type=int, default=20, help="timed queries per size")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--build-images", type=int, default=96,
                        help="real photos indexed for the throughput (0 = skip)")
    parser.add_argument("--build-threads", default="2,1",
                        help="torch threads of the build runs, comma-separated")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the build test")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_before = os.getloadavg()

    describer = load_describer("lite", device)
    photo = torch.from_numpy(registry_photos()[1].copy()).permute(2, 0, 1).float() / 255
    times, cpu = [], []
    for i in range(12):
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        _query_descriptors(describer, photo)  # as recommend() computes it
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    descriptor_ms, descriptor_best = 1000 * statistics.median(times), 1000 * min(times)
    descriptor_cpu = 1000 * statistics.median(cpu)

    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        data = synthetic(n, device)
        restricted = time_search(data, args.queries, True, device)
        full = time_search(data, args.queries, False, device)
        rows.append((n, restricted, full, descriptor_ms + full[0], data.nbytes() / n))
        del data

    builds = []
    if args.build_images > 0:
        scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bm_recommend_"))
        photos = scratch / "photos"
        shutil.rmtree(photos, ignore_errors=True)
        make_collection(photos, args.build_images)
        for threads in (int(t) for t in args.build_threads.split(",")):
            index = scratch / f"index_{threads}"
            shutil.rmtree(index, ignore_errors=True)
            torch.set_num_threads(threads)
            start_cpu = time.process_time()
            report = build_index(photos, index, describer, batch_size=16)
            build_cpu = (time.process_time() - start_cpu) / report.indexed
            raw = sum(p.stat().st_size for p in index.glob("raw-*.safetensors")) / report.indexed
            search = sum(p.stat().st_size for p in index.glob("search-*.safetensors"))
            builds.append((threads, report.indexed, report.seconds, report.indexed / report.seconds,
                           raw, search / report.indexed, build_cpu))
        torch.set_num_threads(args.threads)
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    manifest = manifest_bytes_per_entry()
    load_after = os.getloadavg()

    print(f"Machine: {machine(device)}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (a shared machine: other jobs ran at the same time).\n")
    print(f"Query descriptor (lite, one 224x224 forward, {QUERY_THREADS} thread): {descriptor_ms:.1f} ms median, "
          f"{descriptor_best:.1f} ms fastest, {descriptor_cpu:.1f} ms of CPU time (all threads)\n")
    print("| indexed images | search, class-restricted: median / fastest / CPU (ms) | search, all "
          "classes: median / fastest / CPU (ms) | end to end, all classes, median (ms) | query "
          "tensors per image (bytes) | + manifest entry in memory (bytes) | total at this size "
          "(MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, restricted, full, end, per in rows:
        print(f"| {n:,} | {restricted[0]:.1f} / {restricted[1]:.1f} / {restricted[2]:.1f} | "
              f"{full[0]:.1f} / {full[1]:.1f} / {full[2]:.1f} | {end:.1f} | {per:,.0f} | "
              f"{manifest:,.0f} | {n * (per + manifest) / 2**20:,.0f} |")
    for threads, count, seconds, rate, raw, search, cpu_per_image in builds:
        print(f"\nBuild (lite, {threads} torch thread(s), {args.device}): {count} real photos "
              f"(JPEG, 250-1411 px) in {seconds:.1f} s = **{rate:.1f} images/s** wall clock; "
              f"{1000 * cpu_per_image:.0f} ms of CPU time per image (all threads); on disk "
              f"{raw / 1024:.1f} KiB raw + {search / 1024:.1f} KiB search per image.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
