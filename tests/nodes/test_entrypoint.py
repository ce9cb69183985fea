"""The repository-root ``__init__.py``: ComfyUI's entry point stays cheap and self-contained."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # fresh Python processes

REPO = Path(__file__).resolve().parents[2]

LOAD_PACK = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location(
    "some_pack", {str(REPO / "__init__.py")!r}, submodule_search_locations=[{str(REPO)!r}])
pack = importlib.util.module_from_spec(spec)
sys.modules["some_pack"] = pack
spec.loader.exec_module(pack)
"""


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_is_light_and_comfyui_free():
    out = _python(LOAD_PACK + "print(sorted(m for m in ('torch', 'comfy', 'comfy_api', "
                              "'deepexemplar_core', 'nodes') if m in sys.modules))\n"
                              "print(hasattr(pack, 'NODE_CLASS_MAPPINGS'), "
                              "callable(pack.comfy_entrypoint))")
    assert out.splitlines() == ["[]", "False True"]


def test_core_found_inside_the_pack_when_not_installed():
    """A git clone into custom_nodes has no installed core: the pack registers its own copy."""
    hide_installed = ("import sys\nsys.meta_path = [f for f in sys.meta_path "
                      "if 'editable' not in repr(f).lower()]\n"
                      "sys.path = [p for p in sys.path if p not in ('', '.', "
                      f"{str(REPO)!r})]\n")
    out = _python(hide_installed + LOAD_PACK + "print(importlib.util.find_spec("
                  "'deepexemplar_core'))\npack._make_core_importable()\n"
                  "import deepexemplar_core.pipeline as p\nprint(p.__file__)")
    not_installed, found = out.splitlines()
    assert not_installed == "None"
    assert Path(found) == REPO / "deepexemplar_core" / "pipeline.py"
