"""Fixtures of the node-pack tests.

* ``pack``: the repository imported as the ComfyUI pack (module ``deepexemplar_pack``), the way
  ComfyUI imports a folder of ``custom_nodes`` (its ``nodes`` package must not be imported as
  a top-level ``nodes``: that name is ComfyUI's ``nodes.py``).
* ``logic``: ``nodes/logic.py`` of the pack (no ComfyUI needed).
* ``comfy``: ComfyUI imported in-process from ``$COMFYUI_DIR`` on the CPU, and the pack's V3
  node module; skipped with the reason when ``$COMFYUI_DIR`` is unset.
* real photos (scikit-image) in ComfyUI's IMAGE layout, and tiny weight files with the real key
  names of the paper networks.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_server import comfyui_dir, make_comfyui_importable  # noqa: E402
from pack_import import import_pack, import_pack_module  # noqa: E402


@pytest.fixture(scope="session")
def pack():
    """The repository root imported as a ComfyUI pack."""
    return import_pack()


@pytest.fixture(scope="session")
def logic(pack):
    """The pack's ComfyUI-free node logic."""
    return import_pack_module("nodes.logic")


@pytest.fixture(scope="session")
def comfy(pack):
    """``(v3_nodes module, comfy.model_management)`` with ComfyUI imported on the CPU."""
    root = comfyui_dir()
    if root is None:
        pytest.skip("COMFYUI_DIR is not set to a ComfyUI checkout (needs main.py, comfy_api/); "
                    "see docs/comfyui.md 'Running the tests'")
    make_comfyui_importable(root)
    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        import comfy.model_management as mm
    except ImportError as err:
        pytest.skip(f"ComfyUI at {root} is not importable with this Python: {err}")
    asyncio.run(pack.comfy_entrypoint())
    return import_pack_module("nodes.v3_nodes"), mm


def _photo(name: str) -> torch.Tensor:
    from skimage import data

    return torch.from_numpy(getattr(data, name)().copy()).float() / 255.0


@pytest.fixture(scope="session")
def cat_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A real gray target and a colour reference in IMAGE layout ``(1, H, W, 3)``.

    Target: left part of scikit-image's cat photo, gray; reference: the right part, mirrored.
    Both are shrunk to a short side of 96 pixels to keep the CPU tests fast.
    """
    cat = _photo("chelsea")
    target = cat[:, :300].mean(-1, keepdim=True).expand(-1, -1, 3)
    reference = cat[:, 150:].flip(1)

    def shrink(image: torch.Tensor) -> torch.Tensor:
        chw = image.movedim(-1, 0)[None]
        scale = 96 / min(chw.shape[-2:])
        size = (round(chw.shape[-2] * scale), round(chw.shape[-1] * scale))
        small = torch.nn.functional.interpolate(chw, size=size, mode="bilinear", antialias=True)
        return small.clamp(0, 1).movedim(1, -1).contiguous()

    return shrink(target), shrink(reference)


@pytest.fixture(scope="session")
def tiny_paper_weights(tmp_path_factory) -> dict[str, Path]:
    """Random weights with the real key names and shapes of the paper networks (safetensors,
    float16 to halve the 200 MB; the loader casts them to the networks' float32).

    Returns ``{"gray_vgg": path, "colornet": path}`` in one folder (``"dir"``).
    """
    from safetensors.torch import save_file

    from deepexemplar_core.colorizers.colornet import ExampleColorNet
    from deepexemplar_core.backbones.vgg_gray import GrayVGG19BN
    from deepexemplar_core.weights import weights_filename

    folder = tmp_path_factory.mktemp("deepexemplar_weights")
    torch.manual_seed(0)
    paths = {"dir": folder}
    for name, net in (("gray_vgg", GrayVGG19BN(with_classifier=False)),
                      ("colornet", ExampleColorNet())):
        state = {k: (v.half() if v.is_floating_point() else v).contiguous()
                 for k, v in net.state_dict().items()}  # half: smaller files, same keys
        path = folder / weights_filename(name)
        save_file(state, str(path))
        paths[name] = path
    return paths
