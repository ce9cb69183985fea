"""Import the repository the way ComfyUI imports a custom-node folder.

The pack is loaded as the package ``deepexemplar_pack`` (its ``__init__.py`` is the ComfyUI
entry point), so ``nodes`` and ``comfy_client`` are its sub-packages and never shadow ComfyUI's
own top-level ``nodes`` module. The repository root is not put on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
PACK = "deepexemplar_pack"


def import_pack() -> ModuleType:
    """The repository root as the package :data:`PACK` (imported once)."""
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK]


def import_pack_module(name: str) -> ModuleType:
    """A module of the pack by its path inside the repository, e.g. ``"nodes.logic"``."""
    import_pack()
    return importlib.import_module(f"{PACK}.{name}")
