"""The video workflows through a real headless ComfyUI: the pack's generated clip in, a colour
video with the same frame count and rate out, the scene-cut report, the UI twin as served.

Needs ``$COMFYUI_DIR`` (see ``test_server.py``) and the temporal smoother in this tree; skipped
with the reason otherwise.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from comfy_server import (
    PACK_NAME,
    comfyui_dir,
    get_json,
    prepare_base,
    running_server,
)
from pack_import import import_pack_module

pytestmark = [pytest.mark.comfyui, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
API = REPO / "workflows" / "api"
CLIP = "deepexemplar_example_clip.mp4"
batch = import_pack_module("comfy_client.batch")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(url, base directory)`` of a running server with an empty input folder."""
    comfy = comfyui_dir()
    if comfy is None:
        pytest.skip("COMFYUI_DIR is not set to a ComfyUI checkout; the server test needs one "
                    "(see docs/comfyui.md 'Running the tests')")
    base = tmp_path_factory.mktemp("comfy_video")
    prepare_base(base)
    with running_server(comfy, base) as url:
        yield url, base


@pytest.fixture(scope="module")
def client(server):
    return batch.ComfyClient(server[0], retries=2, timeout=120)


def _saved_video(client, entry: dict, tmp_path: Path) -> Path:
    videos = [item for output in entry["outputs"].values() for item in output.get("images", [])
              if item["type"] == "output" and item["filename"].endswith(".mp4")]
    assert len(videos) == 1, entry["outputs"]
    path = tmp_path / videos[0]["filename"]
    path.write_bytes(client.download(videos[0]))
    return path


def _texts(entry: dict) -> list[str]:
    return [t for output in entry["outputs"].values() for t in output.get("text", [])]


def _check_colour_video(path: Path, source: Path) -> None:
    from deepexemplar_core import rgb_to_lab
    from deepexemplar_core.video import open_video

    info, original = open_video(path).info, open_video(source).info
    assert (info.frame_count, info.fps) == (original.frame_count, original.fps) == (24, Fraction(12))
    assert (info.width, info.height) == (original.width, original.height)
    import torch

    frames = torch.stack(list(open_video(path)))
    gray = torch.stack(list(open_video(source)))
    assert float(rgb_to_lab(frames)[:, 1:].norm(dim=1).mean()) > 5.0, "expected colour"
    l_out, l_in = rgb_to_lab(frames)[:, 0], rgb_to_lab(gray)[:, 0]
    assert float((l_out - l_in).abs().mean()) < 2.0  # the luminance is the clip's (codec loss)


def test_pack_generates_the_example_clip(server):
    info = get_json(server[0] + "/object_info/LoadVideo")
    assert CLIP in info["LoadVideo"]["input"]["required"]["file"][1]["options"]
    assert (server[1] / "input" / CLIP).is_file()


@pytest.mark.parametrize("name", ["5_colorize_a_video", "6_colorize_a_video_from_a_key_frame"])
def test_video_workflow_runs(client, server, name, tmp_path):
    workflow = json.loads((API / f"{name}.json").read_text())
    entry = client.wait(client.queue_prompt(workflow), 900)
    video = _saved_video(client, entry, tmp_path)
    _check_colour_video(video, server[1] / "input" / CLIP)
    (report,) = _texts(entry)
    assert report.startswith("temporal smoothing: bonneel, 24 frames; scene cuts at frames: none")


def test_ui_video_workflow_runs_as_served(client, server, tmp_path):
    workflow_mod = import_pack_module("comfy_client.workflow")
    ui = get_json(server[0] + f"/api/workflow_templates/{PACK_NAME}/5_colorize_a_video.json")
    prompt = workflow_mod.ui_to_api(ui, get_json(server[0] + "/object_info"))
    prompt["7"]["inputs"]["mode"] = "fast"
    entry = client.wait(client.queue_prompt(prompt), 900)
    _check_colour_video(_saved_video(client, entry, tmp_path), server[1] / "input" / CLIP)
    assert _texts(entry)[0].startswith("temporal smoothing: fast, 24 frames")


def test_bad_widget_names_the_node_and_server_keeps_running(client, server):
    workflow = json.loads((API / "5_colorize_a_video.json").read_text())
    workflow["7"]["inputs"]["flow_preset"] = "slow"
    with pytest.raises(batch.ComfyError, match="flow_preset"):
        client.wait(client.queue_prompt(workflow), 300)
    assert "system" in get_json(server[0] + "/system_stats")
