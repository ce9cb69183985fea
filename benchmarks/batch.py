"""Throughput of ``deepexemplar batch`` (Ray Data) against ``deepexemplar colorize FOLDER``, peak
memory per worker, and the cost of resuming a million-file job.

The photos are the registry photos of ``benchmarks/datasets.py`` (scikit-image, scikit-learn,
matplotlib), made gray and repeated with small crops up to ``--files``. Each command runs in a
fresh process on the same files and the same 2 cores (``colorize`` with torch's 2 threads and
with 1; a ``batch`` worker gets the cores divided among the workers as its threads), twice: on one file (start-up: Python, Ray, the models)
and on all of them; the steady rate is ``(files - 1) / (wall(files) - wall(1))``, so Ray's
start-up (about 10 s here) and the model loading are reported apart from the per-file cost.
Peak memory is the largest resident set of each worker process (the colorizing process for
``colorize``), sampled every 0.1 s.

The ledger part writes a synthetic ledger of ``--ledger-rows`` rows and a list of as many paths,
then times, in a fresh process, what a resume does before any work: listing the INPUT list with
its output paths (:func:`~deepexemplar_core.distributed.inputs.list_tasks`), reading the ledger
and leaving out the done files (target: <= 30 s and <= 1 GB at 1M rows).

    .venv/bin/python benchmarks/batch.py [--files 16] [--size 128] [--ledger-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _photos(folder: Path, count: int) -> Path:
    """``count`` gray photos (registry photos, then crops of them) in ``folder/photos``."""
    from datasets import build_photo_folder
    from PIL import Image

    colour = folder / "colour"
    rows = build_photo_folder(colour, max_side=256)
    out = folder / "photos"
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = Image.open(colour / rows[i % len(rows)].file).convert("L")
        k = i // len(rows)
        image = image.crop((k * 4, k * 4, image.width - k * 4, image.height - k * 4))
        image.save(out / f"{i:04d}.png")
    return out


def _watch(match: str, since: float, peaks: dict[int, int], stop: threading.Event) -> None:
    """Record the peak RSS of the processes started after ``since`` (epoch seconds) whose command
    line has ``match`` (Ray's workers are the raylet's children, not the driver's)."""
    import psutil

    while not stop.is_set():
        for p in psutil.process_iter():
            try:
                if p.create_time() >= since and match in _cmd(p):
                    peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
            except psutil.Error:
                pass
        stop.wait(0.1)


def _cmd(p) -> str:
    import psutil

    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def _run(args: list[str], match: str, env: dict[str, str]) -> tuple[float, list[int]]:
    """Wall seconds of ``deepexemplar ARGS`` in a fresh process, and the peak RSS per worker."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    peaks: dict[int, int] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(match, time.time() - 1, peaks, stop))
    watcher.start()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "deepexemplar_core", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"deepexemplar {' '.join(args)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, sorted(peaks.values())


def _throughput(folder: Path, reference: Path, files: int, size: int) -> list[dict]:
    photos = _photos(folder, files)
    one = folder / "one"
    one.mkdir(exist_ok=True)
    (one / "0000.png").write_bytes((photos / "0000.png").read_bytes())
    model = ["-r", str(reference), "--family", "lite", "--size", str(size), "-q"]

    def colorize(src: Path, out: Path) -> list[str]:
        return ["colorize", str(src), "-o", str(out), *model]

    runs = [("colorize FOLDER", colorize, "deepexemplar_core colorize", {}),
            ("colorize, 1 thread", colorize, "deepexemplar_core colorize",
             {"OMP_NUM_THREADS": "1"})]
    for workers in (1, 2):
        runs.append((f"batch --workers {workers}",
                     lambda src, out, w=workers: ["batch", str(src), "-o", str(out), *model,
                                                  "--workers", str(w)],
                     "FileColorizer", {}))
    rows = []
    for name, command, match, env in runs:
        tag = "".join(c if c.isalnum() else "_" for c in name)
        start_up, _ = _run(command(one, folder / f"out_{tag}_1"), match, env)
        wall, peaks = _run(command(photos, folder / f"out_{tag}"), match, env)
        rows.append({"command": name, "files": files, "wall_s": round(wall, 1),
                     "start_up_s": round(start_up, 1),
                     "steady_files_per_s": round((files - 1) / max(wall - start_up, 1e-9), 3),
                     "end_to_end_files_per_s": round(files / wall, 3),
                     "peak_rss_per_worker_mb": [round(p / 2**20) for p in peaks]})
    return rows


def _ledger_child(ledger: str, listing: str, output: str) -> None:
    """Time a resume's bookkeeping in this fresh process; print JSON."""
    import resource

    from deepexemplar_core.distributed.inputs import list_tasks
    from deepexemplar_core.distributed.ledger import Ledger

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = time.process_time()
    start = time.perf_counter()
    tasks = list_tasks(listing, output)
    listed = time.perf_counter()
    ledger_ = Ledger.open(ledger, {"reference": "/refs/a.jpg"})
    pending = [t for t in tasks if ledger_.needs(t.input)]
    end = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": len(ledger_.status), "tasks": len(tasks), "pending": len(pending),
                      "list_s": round(listed - start, 2), "ledger_s": round(end - listed, 2),
                      "total_s": round(end - start, 2),
                      "cpu_s": round(time.process_time() - cpu, 2), "peak_rss_mb": round(peak / 1024),
                      "rss_after_imports_mb": round(base / 1024)}))


def _ledger(folder: Path, rows: int) -> dict:
    """Write a synthetic ledger (every row done but the last 1%) and the INPUT list; time a resume."""
    ledger, listing = folder / "ledger.jsonl", folder / "inputs.txt"
    start = time.perf_counter()
    with open(ledger, "w") as lf, open(listing, "w") as pf:
        lf.write(json.dumps({"format": "deepexemplar-batch-ledger/1",
                             "settings": {"reference": "/refs/a.jpg"}}) + "\n")
        for i in range(rows):
            source = f"/archive/box{i // 1000:04d}/scan_{i:07d}.tif"
            pf.write(source + "\n")
            if i < rows * 0.99:
                lf.write(json.dumps({"input": source, "status": "ok",
                                     "output": f"/out/box{i // 1000:04d}/scan_{i:07d}_colorized.png",
                                     "sha256": f"{i:064x}", "seconds": 1.234, "error": ""}) + "\n")
    written = time.perf_counter() - start
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import batch; "
            "batch._ledger_child(*sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", code, str(ledger), str(listing),
                           str(folder / "out")], env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    result.update(write_s=round(written, 1), ledger_mb=round(ledger.stat().st_size / 2**20))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16, help="photos per run")
    parser.add_argument("--size", type=int, default=128, help="working size (--size)")
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    from machine import cpu_name
    from PIL import Image
    from skimage import data

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bm-batch-") as tmp:
        folder = Path(tmp)
        reference = folder / "reference.png"
        Image.fromarray(data.chelsea()).save(reference)
        if not args.skip_throughput:
            print(f"{args.files} gray registry photos (longest side 256), --size {args.size}, "
                  "lite family, CPU")
            print(f"{'command':22s} {'wall s':>7s} {'start-up s':>10s} {'files/s steady':>15s} "
                  f"{'files/s e2e':>12s}  peak RSS per worker (MB)")
            for row in _throughput(folder, reference, args.files, args.size):
                print(f"{row['command']:22s} {row['wall_s']:7.1f} {row['start_up_s']:10.1f} "
                      f"{row['steady_files_per_s']:15.3f} {row['end_to_end_files_per_s']:12.3f}  "
                      f"{row['peak_rss_per_worker_mb']}")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        result = _ledger(folder, args.ledger_rows)
        print(f"resume bookkeeping, {result['rows']:,} ledger rows ({result['ledger_mb']} MB), "
              f"{result['tasks']:,} listed paths, {result['pending']:,} pending: "
              f"list {result['list_s']} s + ledger {result['ledger_s']} s = {result['total_s']} s "
              f"wall ({result['cpu_s']} s CPU), "
              f"peak RSS {result['peak_rss_mb']} MB (after imports {result['rss_after_imports_mb']} "
              f"MB); load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
