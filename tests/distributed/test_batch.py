"""``deepexemplar batch`` on a local Ray (2 CPUs): 20 real photos and 2 corrupt files; a rerun; a
driver and a worker killed mid-run; the same pixels as ``deepexemplar colorize``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from batch_helpers import MODEL, ledger_rows

from deepexemplar_core.cli import EXIT_INPUT, EXIT_OK, main
from deepexemplar_core.distributed.ledger import DONE
from deepexemplar_core.files import sha256_file
from deepexemplar_core.image_io import read_image, read_metadata

#: A local Ray cluster in worker processes: end to end, left out of the quick tier.
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GOOD, BROKEN, SMALL = 20, ("garbage.png", "truncated.jpg"), "tiny.png"
#: The statuses of the files that fail, whatever the run.
FAILED = {"unreadable": len(BROKEN), "invalid": 1}


def _batch(tree: Path, output: Path, reference: Path, address: str, *extra: str) -> list[str]:
    return ["batch", str(tree), "-o", str(output), "-r", str(reference), "--address", address,
            "--workers", "2", *MODEL, *extra]


def _workers() -> list:
    """The processes of the batch actors now alive (Ray names them after the class)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "FileColorizer" in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


def _stamps(output: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in output.rglob("*_colorized.png")}


@pytest.fixture(scope="module")
def first_run(photo_tree, reference, ray_address, tmp_path_factory):
    output = tmp_path_factory.mktemp("batch") / "out"
    code = main(_batch(photo_tree, output, reference, ray_address, "--batch-size", "2"))
    return code, output


def test_every_good_file_is_written_once_and_the_corrupt_ones_recorded(first_run, photo_tree):
    code, output = first_run
    assert code == EXIT_INPUT
    rows = ledger_rows(output)
    assert Counter(row["status"] for row in rows) == {"ok": GOOD, **FAILED}
    assert len({row["input"] for row in rows}) == GOOD + len(BROKEN) + 1
    failed = {Path(row["input"]).name: row["error"] for row in rows if row["status"] != "ok"}
    assert set(failed) == {*BROKEN, SMALL}
    assert all("cannot read the image" in failed[name] for name in BROKEN)
    assert failed[SMALL].startswith(str(photo_tree / "broken" / SMALL))  # named by its file
    assert "32" in failed[SMALL]
    for row in rows:
        if row["status"] != "ok":
            assert not Path(row["output"]).exists() and row["sha256"] == ""
            continue
        source, written = Path(row["input"]), Path(row["output"])
        relative = source.relative_to(photo_tree)  # the output mirrors the tree
        assert written == output / relative.parent / f"{source.stem}_colorized.png"
        assert row["sha256"] == sha256_file(written) and row["seconds"] > 0
        assert read_image(written).size == read_image(source).size
        assert read_metadata(written)["deepexemplar:target"] == str(source)
    assert not list(output.rglob("*.tmp"))


@pytest.fixture()
def one_thread():
    """The threads of a batch worker here (2 workers on 2 CPUs: 1 each); CPU kernels round
    differently with other thread counts (a rare value moves by one level)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_outputs_equal_colorize_pixels(first_run, photo_tree, reference, tmp_path, one_thread):
    _, output = first_run
    compared = 0
    for folder in ("a", "b/c", "d"):
        assert main(["colorize", str(photo_tree / folder), "-r", str(reference),
                     "-o", str(tmp_path / folder), *MODEL]) == EXIT_OK
        for made in sorted((tmp_path / folder).iterdir()):
            expected = read_image(made).pixels
            got = read_image(output / folder / made.name).pixels
            assert torch.equal(got, expected), made.name
            compared += 1
    assert compared == GOOD


def test_a_rerun_does_no_work(first_run, photo_tree, reference, ray_address, capsys):
    _, output = first_run
    ledger = (output / "deepexemplar-ledger.jsonl").read_bytes()
    stamps = _stamps(output)
    capsys.readouterr()
    code = main(_batch(photo_tree, output, reference, ray_address, "--json"))
    summary = json.loads(capsys.readouterr().out)
    assert code == EXIT_INPUT  # the corrupt and the tiny files stay failed
    assert (summary["pending"], summary["done_before"], summary["failed_before"]) == (0, GOOD, 3)
    assert (output / "deepexemplar-ledger.jsonl").read_bytes() == ledger
    assert _stamps(output) == stamps


def test_driver_killed_mid_run_then_restarted(photo_tree, reference, ray_address, tmp_path):
    output = tmp_path / "out"
    args = _batch(photo_tree, output, reference, ray_address, "--batch-size", "1")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "driver.log", "wb") as log:
        driver = subprocess.Popen([sys.executable, "-m", "deepexemplar_core", *args], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        ledger = output / "deepexemplar-ledger.jsonl"
        _wait(lambda: driver.poll() is not None
              or (ledger.exists() and len(ledger.read_text().splitlines()) >= 4),
              300, "the first results")
        assert driver.poll() is None, "the job ended before it could be killed"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    _wait(lambda: not _workers(), 60, "Ray to stop the dead driver's workers")
    before = ledger_rows(output)
    assert 3 <= len(before) < GOOD + len(BROKEN) + 1
    stamps = _stamps(output)
    assert main(_batch(photo_tree, output, reference, ray_address)) == EXIT_INPUT
    rows = ledger_rows(output)
    done = Counter(row["input"] for row in rows if row["status"] in DONE)
    assert len(done) == GOOD and set(done.values()) == {1}  # every file done once
    assert {p: s for p, s in _stamps(output).items() if p in stamps} == stamps  # none rewritten
    assert len(_stamps(output)) == GOOD
    assert not list(output.rglob("*.tmp"))  # no partial file
    for row in rows:
        if row["status"] in DONE:
            assert sha256_file(row["output"]) == row["sha256"]


def test_worker_killed_mid_run(photo_tree, reference, ray_address, tmp_path):
    output, killed, stop = tmp_path / "out", [], threading.Event()

    def kill_one_worker() -> None:
        while not stop.is_set():
            workers = _workers()
            if workers and len(list(output.rglob("*_colorized.png"))) >= 2:
                workers[0].kill()
                killed.append(workers[0].pid)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        code = main(_batch(photo_tree, output, reference, ray_address, "--batch-size", "2"))
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was killed (the job ended first)"
    assert code == EXIT_INPUT
    rows = ledger_rows(output)
    statuses = Counter({row["input"]: row["status"] for row in rows}.values())  # last wins
    assert statuses["ok"] + statuses["exists"] == GOOD  # the retried block's written files: exists
    assert set(statuses) <= {"ok", "exists", *FAILED}
    assert {name: statuses[name] for name in FAILED} == FAILED
    assert len(_stamps(output)) == GOOD and not list(output.rglob("*.tmp"))
    for path in _stamps(output):
        assert read_image(path).pixels.shape[0] == 3


def test_writes_left_by_killed_workers_are_swept_when_the_job_ends(reference, ray_address,
                                                                    photo_tree, tmp_path):
    tree = tmp_path / "in"
    tree.mkdir()
    for name in ("astronaut", "coffee"):
        (tree / f"{name}.png").write_bytes(next(photo_tree.rglob(f"{name}.png")).read_bytes())
    output = tmp_path / "out"
    (output / "sub" / ".astronaut_intermediates.x1.tmp").mkdir(parents=True)  # atomic_folder
    (output / "sub" / ".astronaut_intermediates.x1.tmp" / "choice.png").write_bytes(b"half")
    (output / ".coffee_colorized.png.x2.tmp").write_bytes(b"half")  # atomic_path
    assert main(_batch(tree, output, reference, ray_address)) == EXIT_OK
    assert not list(output.rglob("*.tmp")) and len(_stamps(output)) == 2


def test_a_folder_of_clips_one_clip_per_task(reference, ray_address, tmp_path):
    from video_clips import make_clip

    from deepexemplar_core.video import open_video

    clips = tmp_path / "clips"
    (clips / "reel").mkdir(parents=True)
    make_clip(clips / "reel" / "pan.mp4", count=6, gray=True, audio=False)
    make_clip(clips / "pan2.mov", count=5, gray=True, audio=False)
    output = tmp_path / "out"
    assert main(_batch(clips, output, reference, ray_address)) == EXIT_OK
    rows = {Path(row["input"]).name: row for row in ledger_rows(output)}
    assert {name: row["status"] for name, row in rows.items()} == {"pan.mp4": "ok", "pan2.mov": "ok"}
    for name, frames, written in (("pan.mp4", 6, output / "reel" / "pan_colorized.mp4"),
                                  ("pan2.mov", 5, output / "pan2_colorized.mov")):
        assert Path(rows[name]["output"]) == written
        reader = open_video(written)
        assert reader.info.frame_count == frames
        frame = next(iter(reader))
        chroma = (frame.max(dim=0).values - frame.min(dim=0).values).mean()
        assert float(chroma) > 0.02  # coloured, not gray


def test_colorize_dataset_gives_colorize_pixels(first_run, photo_tree, reference, ray_address):
    import ray

    from deepexemplar_core.distributed import colorize_dataset

    _, output = first_run
    ds = ray.data.read_images(str(photo_tree / "a"), include_paths=True, mode="L")
    rows = colorize_dataset(ds, str(reference), family="lite", size=64).take_all()
    assert len(rows) == len(list((photo_tree / "a").iterdir()))
    for row in rows:
        assert row["error"] == ""
        made = output / "a" / f"{Path(row['path']).stem}_colorized.png"
        expected = (read_image(made).pixels * 255).round().to(torch.uint8).permute(1, 2, 0)
        assert np.array_equal(row["image"], expected.numpy()), made.name


def test_workers_that_cannot_start_fail_the_job_with_the_fix(photo_tree, reference, ray_address,
                                                             tmp_path, capsys):
    from deepexemplar_core.cli import EXIT_WEIGHTS

    output = tmp_path / "out"
    args = ["batch", str(photo_tree / "a"), "-o", str(output), "-r", str(reference),
            "--address", ray_address, "--family", "paper", "--weights", str(tmp_path), "--quiet"]
    assert main(args) == EXIT_WEIGHTS  # the paper weights are not in tmp_path
    error = capsys.readouterr().err
    assert "deepexemplar convert" in error or "DEEPEXEMPLAR_WEIGHTS" in error, error[-2000:]
    assert ledger_rows(output) == [] and not list(output.rglob("*_colorized.png"))


def test_several_references_colour_per_pixel_and_are_recorded(photo_tree, reference, ray_address,
                                                             tmp_path, one_thread):
    """``-r a -r b``: the set prepared once per worker; each output has the pixels and the
    metadata of ``deepexemplar colorize -r a -r b``; the ledger records both references."""
    from PIL import Image
    from skimage import data

    second = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(second, quality=95)
    refs = ["-r", str(reference), "-r", str(second)]
    folder, output = photo_tree / "d", tmp_path / "out"
    assert main(["batch", str(folder), "-o", str(output), *refs, "--address", ray_address,
                 "--workers", "2", *MODEL]) == EXIT_OK  # 1 thread each, as one_thread
    header = json.loads((output / "deepexemplar-ledger.jsonl").read_text().splitlines()[0])
    assert header["settings"]["reference"] == [str(reference), str(second)]
    assert main(["colorize", str(folder), *refs, "-o", str(tmp_path / "colorize"), *MODEL]) == EXIT_OK
    made = sorted((tmp_path / "colorize").iterdir())
    assert len(made) == len(list(folder.iterdir())) == len(ledger_rows(output))
    for path in made:
        got = output / path.name
        assert torch.equal(read_image(got).pixels, read_image(path).pixels), path.name
        meta = read_metadata(got)
        assert json.loads(meta["deepexemplar:references"]) == [str(reference), str(second)]
        assert sum(json.loads(meta["deepexemplar:choice"]).values()) == pytest.approx(1.0, abs=1e-3)
        assert meta["deepexemplar:choice"] == read_metadata(path)["deepexemplar:choice"]


def test_a_set_with_a_reference_the_core_refuses_names_its_file(photo_tree, reference,
                                                                 ray_address, tmp_path, capsys):
    """The workers' setup error comes back through Ray pickled: it was an ImageError, which
    could not be (``Failed to deserialize exception`` and a traceback, exit 5), naming
    ``references[1]``."""
    from PIL import Image

    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tiny)
    output = tmp_path / "out"
    code = main(["batch", str(photo_tree / "a"), "-o", str(output), "-r", str(reference), "-r",
                 str(tiny), "--address", ray_address, *MODEL])
    error = capsys.readouterr().err
    assert code == EXIT_INPUT, error[-2000:]
    assert f"{tiny}: reference: 8x8 (width x height) is too small" in error
    assert "deserialize" not in error
    assert not list(output.rglob("*_colorized.png"))
