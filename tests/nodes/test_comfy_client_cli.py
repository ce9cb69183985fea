"""The batch client runs from any folder (issue 17, item 20): as a folder run with any Python,
and as the installed ``deepexemplar-comfy-batch`` command / ``python -m comfy_client``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH: only what the command itself makes importable."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_folder_run_works_from_another_folder(tmp_path):
    """``python /path/to/pack/comfy_client`` reaches the batch client's own usage checks."""
    (tmp_path / "in").mkdir()
    answer = subprocess.run(
        [sys.executable, str(REPO / "comfy_client"), "--workflow", "w.json", "--inputs",
         str(tmp_path / "in"), "--output", str(tmp_path / "out")],
        cwd=tmp_path, env=_clean_env(), check=False, capture_output=True, text=True, timeout=120)
    assert "ModuleNotFoundError" not in answer.stderr
    assert answer.returncode == 2 and "error: no images" in answer.stderr, answer.stderr


def test_help_names_every_option_from_another_folder(tmp_path):
    answer = subprocess.run([sys.executable, str(REPO / "comfy_client"), "--help"],
                            cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
                            timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert "--workflow" in answer.stdout and "--reference" in answer.stdout


@pytest.mark.timeout(300)
def test_installed_package_ships_the_client_and_its_command(tmp_path):
    """The wheel holds ``comfy_client`` and the ``deepexemplar-comfy-batch`` entry point."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "build")
    for package in ("deepexemplar_core", "cuda_ext", "comfy_client"):
        shutil.copytree(REPO / package, source / package, ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        cwd=tmp_path, env=_clean_env(), check=False, capture_output=True, text=True, timeout=280)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    assert {"comfy_client/__main__.py", "comfy_client/batch.py",
            "comfy_client/workflow.py"} <= names
    assert "deepexemplar-comfy-batch = comfy_client.batch:main" in entry_points
    # installed, the package is importable from anywhere: run it from the unpacked wheel
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    answer = subprocess.run([sys.executable, "-m", "comfy_client", "--help"], cwd=tmp_path,
                            env=dict(_clean_env(), PYTHONPATH=str(unpacked)),
                            check=False, capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0 and "--workflow" in answer.stdout, answer.stderr


@pytest.mark.parametrize("mistake", ["reference", "workflow", "json"])
def test_a_missing_file_is_a_usage_error_not_a_traceback(tmp_path, mistake):
    """Several ``-r``/``--reference`` of template 7 with one missing, a missing or broken
    workflow: exit status 2 and one line naming the file, before anything is written (no server
    is contacted: the address is unreachable)."""
    (tmp_path / "in").mkdir()
    shutil.copy(REPO / "workflows" / "images" / "deepexemplar_target_two_photos.png",
                tmp_path / "in")
    (tmp_path / "broken.json").write_text('{"1":', encoding="utf-8")
    workflow = {"reference": REPO / "workflows" / "api" / "7_colorize_with_several_references.json",
                "workflow": tmp_path / "missing.json", "json": tmp_path / "broken.json"}[mistake]
    answer = subprocess.run(
        [sys.executable, "-m", "comfy_client", "--url", "http://127.0.0.1:9", "--retries", "1",
         "--workflow", str(workflow), "--inputs", str(tmp_path / "in"),
         "--output", str(tmp_path / "out"),
         "-r", str(tmp_path / "missing.jpg"),
         "--reference", str(REPO / "workflows" / "images" / "deepexemplar_reference_cat.jpg")],
        cwd=REPO, env=_clean_env(), check=False, capture_output=True, text=True, timeout=120)
    assert answer.returncode == 2 and "Traceback" not in answer.stderr, answer.stderr
    named = {"reference": "--reference " + str(tmp_path / "missing.jpg") + ": not a file",
             "workflow": f"--workflow {workflow}: [Errno 2]",
             "json": f"--workflow {workflow}: Expecting value"}[mistake]
    assert answer.stderr.startswith("error: " + named), answer.stderr
    assert not (tmp_path / "out").exists()
