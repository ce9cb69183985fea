"""The node, the command line and the Python API make one core call each: the same pixels."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from deepexemplar_core import ColorizeConfig, colorize, load_models
from deepexemplar_core.cli import EXIT_OK, main
from deepexemplar_core.image_io import read_image

SIZE = 64


def _to_uint8(image_chw: torch.Tensor) -> np.ndarray:
    return (image_chw.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def test_node_cli_and_api_give_the_same_pixels(logic, cat_pair, tmp_path):
    target, reference = cat_pair  # (1, H, W, 3) in [0, 1]
    target_png, reference_png = tmp_path / "target.png", tmp_path / "reference.png"
    Image.fromarray(_to_uint8(target[0].movedim(-1, 0))[..., 0]).save(target_png)
    Image.fromarray(_to_uint8(reference[0].movedim(-1, 0))).save(reference_png)
    # all three start from the same 8-bit files
    target_t, reference_t = read_image(target_png).pixels, read_image(reference_png).rgb()

    api = colorize(target_t, reference_t, load_models("lite"), ColorizeConfig(size=SIZE)).images[0]

    backbone = logic.load_backbone(logic.BUILTIN_LITE, None, allow_download=False, search_dirs=())
    colornet = logic.load_colornet(logic.NO_COLORNET, None, allow_download=False, search_dirs=())
    models = logic.assemble_models(backbone, colornet, "cpu", "ExemplarColorize")
    node_target = target_t.expand(3, -1, -1).movedim(0, -1)[None]  # IMAGE, as LoadImage gives it
    node_reference = reference_t.movedim(0, -1)[None]
    node = logic.run_colorize(models, logic.image_to_core(node_target, "target", "n"),
                              logic.reference_to_core(node_reference, "n"),
                              logic.make_config("ExemplarColorize", SIZE), "n")[0]

    out = tmp_path / "cli.png"
    code = main(["colorize", str(target_png), "-r", str(reference_png), "-o", str(out),
                 "--size", str(SIZE), "--family", "lite", "--quiet"])
    assert code == EXIT_OK
    cli = np.asarray(Image.open(out).convert("RGB"))

    torch.testing.assert_close(node, api, atol=1e-5, rtol=0)
    assert np.abs(cli.astype(int) - _to_uint8(api).astype(int)).max() <= 1
    assert float(api.std(dim=0).mean()) > 0.01  # it is in colour
