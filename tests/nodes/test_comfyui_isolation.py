"""Importing ComfyUI in the test process leaves the other tests' spawned processes alone.

With ``$COMFYUI_DIR`` set, the ``comfy`` fixture imports ComfyUI in-process. The DDP training test
then spawns workers that import its module by name (``tests.training.test_train``); when ComfyUI's
checkout was on ``sys.path`` they imported ComfyUI's own ``tests`` package instead and failed with
``No module named 'tests.training'``. Skipped with the reason when ``$COMFYUI_DIR`` is unset.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_server import comfyui_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_ddp_test_passes_after_comfyui_is_imported():
    root = comfyui_dir()
    if root is None:
        pytest.skip("COMFYUI_DIR is not set to a ComfyUI checkout")
    first = "tests/nodes/test_ui_messages.py::test_every_node_is_found_by_the_words_users_search"
    ddp = "tests/training/test_train.py::test_two_process_gloo_ddp_equals_one_process"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", first,
                           ddp], cwd=REPO, env={**os.environ, "COMFYUI_DIR": str(root)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "2 passed" in proc.stdout  # ComfyUI was imported first (not skipped), then the DDP
