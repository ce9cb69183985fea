"""The paper family end to end on generated weights with the authors' exact key names and shapes.

The weights are random (the authors' files cannot be fetched here), so these tests check the
plumbing that real converted weights go through: resolution, ``auto`` choice, provenance, the
13-channel network in the chain, output size and luminance, and the CLI.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from deepexemplar_core.cli import EXIT_OK, main
from deepexemplar_core.color import rgb_to_lab
from deepexemplar_core.image_io import read_metadata, write_image
from deepexemplar_core.colorizers.colornet import ExampleColorNet
from deepexemplar_core.backbones.vgg_gray import GrayVGG19BN
from deepexemplar_core.models import load_models
from deepexemplar_core.pipeline import ColorizeConfig, colorize
from deepexemplar_core.files import sha256_file


def _save(module: torch.nn.Module, path) -> None:
    state = {k: v.contiguous() for k, v in module.state_dict().items() if "num_batches_tracked" not in k}
    save_file(state, str(path))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper-weights")
    torch.manual_seed(0)
    vgg = GrayVGG19BN(with_classifier=False)
    for name, buffer in vgg.named_buffers():  # non-trivial BatchNorm statistics
        if name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
        elif name.endswith("running_mean"):
            buffer.normal_(0.0, 0.1)
    _save(vgg, folder / "vgg19_bn_gray.safetensors")
    _save(ExampleColorNet(), folder / "example_net.safetensors")
    return folder


def test_auto_picks_paper_when_its_weights_resolve(weights_dir):
    models = load_models("auto", search_dirs=[weights_dir])
    assert models.family == "paper" and models.colorizer.name == "paper-colornet"
    assert models.provenance["backbone_sha256"] == sha256_file(weights_dir / "vgg19_bn_gray.safetensors")
    assert models.provenance["colornet_sha256"] == sha256_file(weights_dir / "example_net.safetensors")
    assert "resolved locally" in models.provenance["family_reason"]


def test_auto_falls_back_to_lite_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp_path / "cache"))
    models = load_models("auto")
    assert models.family == "lite"
    reason = models.provenance["family_reason"]
    assert "deepexemplar convert" in reason
    assert reason.endswith("weights 'gray_vgg' (vgg19_bn_gray.safetensors) not found.")


def test_paper_chain_keeps_size_and_luminance(weights_dir, chelsea_rgb):
    models = load_models("paper", search_dirs=[weights_dir])
    gray = rgb_to_lab(chelsea_rgb[None])[:, :1] / 100.0  # any (1, H, W) in [0, 1] works as a target
    result = colorize(gray[0], chelsea_rgb, models, ColorizeConfig(size=128))
    out = result.images[0]
    assert out.shape == (3, 300, 451)
    assert result.similarity.err_tr.shape == (1, 5, 128, 192)
    assert result.similarity.level_names == ("relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1")
    l_in = rgb_to_lab(gray.expand(1, 3, -1, -1))[:, 0]
    l_out = rgb_to_lab(out[None])[:, 0]
    assert float((l_in - l_out).abs().mean()) <= 0.5


def test_cli_with_weights_folder_writes_paper_provenance(weights_dir, tmp_path, chelsea_rgb):
    write_image(tmp_path / "ref.png", chelsea_rgb)
    write_image(tmp_path / "gray.png", chelsea_rgb.mean(0, keepdim=True).expand(3, -1, -1))
    out = tmp_path / "out.png"
    code = main(["colorize", str(tmp_path / "gray.png"), "-r", str(tmp_path / "ref.png"), "-o", str(out),
                 "--weights", str(weights_dir), "--size", "64", "--quiet"])
    assert code == EXIT_OK
    meta = read_metadata(out)
    assert meta["deepexemplar:family"] == "paper"
    assert meta["deepexemplar:colornet_sha256"] == sha256_file(weights_dir / "example_net.safetensors")
