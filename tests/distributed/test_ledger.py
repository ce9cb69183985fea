"""The batch job's bookkeeping without Ray: the ledger, INPUT listing, and the missing extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepexemplar_core.distributed.ledger import Ledger, LedgerError

SETTINGS = {"reference": "/refs/a.jpg", "size": 256}


def _row(source: str, status: str) -> dict:
    return {"input": source, "status": status, "output": f"/out/{source}", "sha256": "",
            "seconds": 0.1, "error": "" if status == "ok" else "why"}


def test_ledger_resume_keeps_the_last_status_and_survives_a_cut_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    with Ledger.open(path, SETTINGS) as ledger:
        ledger.append([_row("a", "ok"), _row("b", "unreadable"), _row("c", "failed")])
        ledger.append([_row("c", "ok")])
    with open(path, "a") as f:
        f.write('{"input": "d", "status": "o')  # a driver killed mid-line
    ledger = Ledger.open(path, SETTINGS)
    assert ledger.status == {"a": "ok", "b": "unreadable", "c": "ok"}
    assert ledger.skipped_lines == 1
    assert [ledger.needs(s) for s in "abcd"] == [False, False, False, True]
    assert [ledger.needs(s, retry_failed=True) for s in "abcd"] == [False, True, False, True]
    with ledger:
        ledger.append([_row("d", "ok")])
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["input"] == "d"  # on a fresh line after the cut one
    assert Ledger.open(path, SETTINGS).status["d"] == "ok"


def test_ledger_refuses_other_settings_and_foreign_files(tmp_path):
    Ledger.open(tmp_path / "ledger.jsonl", SETTINGS).close()
    with pytest.raises(LedgerError, match=r"size 256 -> 128.*same settings"):
        Ledger.open(tmp_path / "ledger.jsonl", {**SETTINGS, "size": 128})
    (tmp_path / "other.jsonl").write_text('{"something": "else"}\n')
    with pytest.raises(LedgerError, match="not a deepexemplar-batch-ledger/1 ledger"):
        Ledger.open(tmp_path / "other.jsonl", SETTINGS)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_folder_tree_is_mirrored_without_hidden_files_or_the_output(tmp_path):
    pytest.importorskip("pyarrow")
    from deepexemplar_core.distributed.inputs import list_tasks

    root = tmp_path / "in"
    for name in ("x.jpg", "x.png", "sub/y.TIF", "sub/deeper/clip.avi", "sub/notes.txt",
                 ".hidden/z.png", "sub/.w.png", "out/old_colorized.png"):
        _touch(root / name)
    tasks = list_tasks(str(root), root / "out")
    got = {Path(t.input).relative_to(root).as_posix(): (Path(t.output).relative_to(root / "out")
                                                        .as_posix(), t.kind) for t in tasks}
    assert got == {
        "x.jpg": ("x_colorized.png", "image"),
        "x.png": ("x_1_colorized.png", "image"),  # as `colorize` names two files of one stem
        "sub/y.TIF": ("sub/y_colorized.png", "image"),
        "sub/deeper/clip.avi": ("sub/deeper/clip_colorized.mp4", "clip"),
    }


@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_a_list_of_paths_relative_to_the_list(tmp_path, kind):
    pytest.importorskip("pyarrow")
    from deepexemplar_core.distributed.inputs import list_tasks

    a = _touch(tmp_path / "scans" / "box1" / "a.png")
    b = _touch(tmp_path / "scans" / "box2" / "b.jpg")
    names = ["box1/a.png", str(b)]  # relative to the list's folder, and absolute
    listing = tmp_path / "scans" / f"list.{kind}"
    if kind == "txt":
        listing.write_text("# scans\n" + "\n".join(names) + "\n\n")
    elif kind == "csv":
        listing.write_text("path,box\n" + "\n".join(f"{n},1" for n in names) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"path": names}), listing)
    tasks = list_tasks(str(listing), tmp_path / "out")
    assert [(t.input, t.output) for t in tasks] == [
        (str(a), str(tmp_path / "out" / "box1" / "a_colorized.png")),
        (str(b), str(tmp_path / "out" / "box2" / "b_colorized.png"))]


def test_a_list_without_a_path_column_and_a_missing_input_are_refused(tmp_path):
    pytest.importorskip("pyarrow")
    from deepexemplar_core.distributed.inputs import list_tasks

    (tmp_path / "list.csv").write_text("file\na.png\n")
    with pytest.raises(ValueError, match="expected a 'path' column"):
        list_tasks(str(tmp_path / "list.csv"), tmp_path / "out")
    with pytest.raises(ValueError, match="no such file or folder"):
        list_tasks(str(tmp_path / "nowhere"), tmp_path / "out")


def test_without_ray_the_package_imports_and_batch_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "import deepexemplar_core.distributed as d\n"
            "from deepexemplar_core.distributed import colorizer, inputs, job, ledger\n"
            "from deepexemplar_core.cli import main\n"
            f"sys.exit(main(['batch', {str(tmp_path)!r}, '-o', {str(tmp_path / 'o')!r}, "
            "'-r', 'ref.jpg']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "pip install 'comfyui-deep-exemplar[distributed]'" in done.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, message", [
    (["-k", "2"], "only the top recommendation"),
    (["--workers", "0"], "workers: expected >= 1, got 0"),
])
def test_options_that_cannot_work_are_refused_before_any_work(tmp_path, capsys, extra, message):
    from deepexemplar_core.cli import EXIT_USAGE, main

    code = main(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "-r", "a.jpg", *extra])
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_job_records_one_reference_as_before_and_several_as_a_list(tmp_path):
    from deepexemplar_core.distributed.job import JobConfig

    one = JobConfig("in", tmp_path, ("a.jpg",))
    assert one.reference == "a.jpg" and one.settings()["reference"] == "a.jpg"
    assert JobConfig("in", tmp_path, "a.jpg").settings() == one.settings()
    two = JobConfig("in", tmp_path, ["a.jpg", "b.jpg"])
    assert two.reference == ("a.jpg", "b.jpg") and two.settings()["reference"] == ["a.jpg", "b.jpg"]
    with pytest.raises(ValueError, match="give a reference"):
        JobConfig("in", tmp_path, ())
