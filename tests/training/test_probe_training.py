"""A user's mistakes on the ``training`` command lines."""

from __future__ import annotations

import logging

import pytest

from training import evaluate


@pytest.mark.parametrize("size", ["0", "-8", "16"])
def test_evaluate_refuses_a_size_below_32_without_a_traceback(tmp_path, caplog, size):
    """``--size 0`` ended in a RuntimeError from the resize (0 is "native" to ColorizeConfig)."""
    from PIL import Image

    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.new("RGB", (40, 36), (200, 60 * i, 30)).save(tmp_path / "photos" / f"{i}.png")
    with caplog.at_level(logging.ERROR):
        code = evaluate.main(["--weights", str(tmp_path / "w.safetensors"),
                              "--images", str(tmp_path / "photos"), "--size", size])
    assert code == 2
    assert f"size: expected the side of the square photos, 32..2048 pixels, got {size}" in caplog.text


def test_evaluate_size_0_with_real_weights_ends_in_the_message(tmp_path, caplog):
    """With readable weights the run got as far as the resize, which raised a RuntimeError."""
    from PIL import Image
    from safetensors.torch import save_file

    from deepexemplar_core.colorizers import ExampleColorNet

    save_file(ExampleColorNet().state_dict(), str(tmp_path / "example_net.safetensors"))
    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.new("RGB", (40, 36), (200, 60 * i, 30)).save(tmp_path / "photos" / f"{i}.png")
    with caplog.at_level(logging.ERROR):
        code = evaluate.main(["--weights", str(tmp_path / "example_net.safetensors"),
                              "--images", str(tmp_path / "photos"), "--size", "0"])
    assert code == 2
    assert "32..2048 pixels, got 0" in caplog.text
