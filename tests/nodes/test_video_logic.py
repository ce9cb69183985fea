"""The video nodes' ComfyUI-free logic: smoothing an IMAGE batch keeps L, reports cuts; the
generated example clip."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch
from pack_import import import_pack_module

from deepexemplar_core import rgb_to_lab
from deepexemplar_core.video import open_video

REPO_IMAGES = Path(__file__).resolve().parents[2] / "workflows" / "images"


@pytest.fixture(scope="module")
def video_logic(pack):
    return import_pack_module("nodes.video_logic")


@pytest.fixture(scope="module")
def temporal():
    import deepexemplar_core.temporal

    return deepexemplar_core.temporal


def _shot(photo: torch.Tensor, count: int, step: int = 2, size: int = 64) -> torch.Tensor:
    """``count`` frames ``(count, size, size, 3)`` panning right across ``photo (3, H, W)``."""
    return torch.stack([photo[:, 20:20 + size, 40 + step * i:40 + step * i + size]
                        for i in range(count)]).movedim(1, -1).contiguous()


def test_off_returns_the_input(video_logic, temporal, chelsea_rgb):
    frames = _shot(chelsea_rgb, 3)
    config = video_logic.make_temporal_config("off", 0.05, "medium", 0.2)
    out, report = video_logic.smooth_image_batch(frames, config)
    assert out is frames and report.scene_cuts == ()
    assert report.text() == "temporal smoothing: off, 3 frames; scene cuts at frames: none"


def test_smoothing_keeps_luminance_and_reports_the_cut(video_logic, temporal, chelsea_rgb,
                                                       astronaut_rgb):
    """Two shots (chelsea, then the astronaut) with flickering colour: L is kept exactly (up to
    float rounding), the cut is found and the flicker within a shot goes down."""
    frames = torch.cat([_shot(chelsea_rgb, 5), _shot(astronaut_rgb, 3)])
    lab = rgb_to_lab(frames.movedim(-1, 1))
    generator = torch.Generator().manual_seed(0)
    flicker = torch.randn(8, 2, 1, 1, generator=generator) * 6.0  # a global colour shift per frame
    from deepexemplar_core import lab_to_rgb

    noisy = lab_to_rgb(torch.cat([lab[:, :1], lab[:, 1:] + flicker], 1), gamut="compress")
    noisy = noisy.clamp(0, 1).movedim(1, -1)
    config = video_logic.make_temporal_config("fast", 0.05, "fast", 0.2)
    calls = []
    out, report = video_logic.smooth_image_batch(noisy, config,
                                                 report=lambda d, t: calls.append((d, t)))
    assert out.shape == noisy.shape and calls[-1] == (8, 8) and len(calls) == 8
    l_in = rgb_to_lab(noisy.movedim(-1, 1))[:, 0]
    l_out = rgb_to_lab(out.movedim(-1, 1))[:, 0]
    assert float((l_in - l_out).abs().max()) < 0.05
    assert report.scene_cuts == (5,)
    assert "scene cuts at frames: 5" in report.text()
    ab_in = rgb_to_lab(noisy.movedim(-1, 1))[:5, 1:].mean(dim=(2, 3))
    ab_out = rgb_to_lab(out.movedim(-1, 1))[:5, 1:].mean(dim=(2, 3))
    assert float(ab_out.diff(dim=0).abs().mean()) < float(ab_in.diff(dim=0).abs().mean())


def test_interruption_stops_between_frames(video_logic, temporal, chelsea_rgb):
    config = video_logic.make_temporal_config("fast", 0.05, "ultrafast", 0.2)
    done = []

    def report(d, t):
        done.append(d)
        if d == 2:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        video_logic.smooth_image_batch(_shot(chelsea_rgb, 5), config, report=report)
    assert done == [1, 2]


def test_bad_inputs_name_the_node(video_logic, temporal, logic):
    with pytest.raises(logic.NodeInputError, match="Video Temporal Smooth: lam: expected a number"):
        video_logic.make_temporal_config("bonneel", -1.0, "medium", 0.2)
    config = video_logic.make_temporal_config("fast", 0.05, "medium", 0.2)
    with pytest.raises(logic.NodeInputError, match=r"expected an RGB IMAGE batch .*got \(2, 8, 8, 4\)"):
        video_logic.smooth_image_batch(torch.rand(2, 8, 8, 4), config)


def test_example_clip(video_logic, tmp_path):
    from deepexemplar_core import read_image

    photo = REPO_IMAGES / "deepexemplar_target_cat.jpg"
    path = video_logic.make_example_clip(photo, tmp_path / video_logic.EXAMPLE_CLIP)
    info = open_video(path).info
    assert (info.frame_count, info.fps, info.width, info.height) == (24, Fraction(12), 160, 120)
    frames = list(open_video(path))
    chroma = rgb_to_lab(torch.stack(frames))[:, 1:].norm(dim=1).mean()
    assert float(chroma) < 1.5  # gray: the workflows colorize it
    # the first frame shows the photo's content (a pan across it): similar mean brightness
    assert abs(float(frames[0].mean()) - float(read_image(photo).pixels.mean())) < 0.1
    assert float((frames[0] - frames[-1]).abs().mean()) > 0.03  # the camera moves



@pytest.mark.comfyui
def test_node_in_process(comfy, temporal, chelsea_rgb):
    """The V3 node inside an in-process ComfyUI: listed, tooltips everywhere, runs and reports."""
    import asyncio

    from comfy_api.latest import io

    v3 = comfy[0]
    video_nodes = import_pack_module("nodes.video_nodes")
    listed = asyncio.run(v3.DeepExemplarExtension().get_node_list())
    assert video_nodes.VideoTemporalSmooth in listed
    schema = video_nodes.VideoTemporalSmooth.GET_SCHEMA()
    assert schema.node_id == "DeepExemplar_VideoTemporalSmooth"
    assert schema.category == "image/colorization" and schema.description
    assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)
    defaults = {i.id: getattr(i, "default", None) for i in schema.inputs}
    core = temporal.TemporalConfig()
    assert (defaults["mode"], defaults["lam"], defaults["flow_preset"], defaults["scene_cut"]) == (
        core.mode, core.lam, core.flow_preset, core.scene_cut)
    clone = video_nodes.VideoTemporalSmooth.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "7"})
    frames = _shot(chelsea_rgb, 4)
    images, text = clone.execute(frames, "fast", 0.05, "ultrafast", 0.2).result
    assert images.shape == frames.shape and text.startswith("temporal smoothing: fast, 4 frames")


def test_doctests(video_logic):
    import doctest

    result = doctest.testmod(video_logic, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
