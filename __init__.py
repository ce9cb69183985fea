"""ComfyUI entry point of the Deep Exemplar-based Colorization node pack.

ComfyUI imports this file when the repository sits in ``custom_nodes/``. It stays cheap and
ComfyUI-free at import time: the nodes (and torch, ComfyUI's APIs, the core library) are imported
only when ComfyUI calls :func:`comfy_entrypoint`. There is deliberately no
``NODE_CLASS_MAPPINGS``: ComfyUI would then ignore the V3 entry point.
"""

import importlib.util
import os
import sys

_CORE = "deepexemplar_core"

#: The pack's page extension (``web/``): it says in the page when ComfyUI skips an output.
WEB_DIRECTORY = "./web"
_CORE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), _CORE)


def _make_core_importable() -> None:
    """Make ``import deepexemplar_core`` find the pack's own copy of the library.

    The pack folder is not put on ``sys.path`` (its ``nodes`` and ``tests`` folders would shadow
    ComfyUI's modules); the core package alone is registered. An already imported core (e.g. a
    pip-installed one) is kept.
    """
    if _CORE in sys.modules:
        return
    try:
        if importlib.util.find_spec(_CORE) is not None:
            return
    except (ImportError, ValueError):
        pass
    spec = importlib.util.spec_from_file_location(
        _CORE, os.path.join(_CORE_DIR, "__init__.py"), submodule_search_locations=[_CORE_DIR])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_CORE] = module
    spec.loader.exec_module(module)


async def comfy_entrypoint():
    """Return the pack's ``ComfyExtension`` (ComfyUI V3 API).

    Inside ComfyUI a run must never block on a compiler: the compiled PatchMatch extension is
    used only when a cached build exists (``deepexemplar build-ext`` makes one), else the
    pure-PyTorch matcher runs.
    """
    os.environ.setdefault("DEEPEXEMPLAR_EXT_JIT", "0")
    _make_core_importable()
    from .nodes.v3_nodes import comfy_entrypoint as nodes_entrypoint

    return await nodes_entrypoint()
