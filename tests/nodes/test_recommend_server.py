"""``RecommendReference`` in a real headless ComfyUI: the automatic-colorization workflow (API
and UI as served), and indexes listed from ``models/deepexemplar/indexes`` and from a folder
named in ``extra_model_paths.yaml``.

Needs ``$COMFYUI_DIR`` (run with ComfyUI's Python); skipped with the reason otherwise.
"""

from __future__ import annotations

import io
import json
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
IMAGES = REPO / "workflows" / "images"
batch = import_pack_module("comfy_client.batch")


def _photos(folder: Path) -> Path:
    """The pack's colour example image and two registry photos, as a small collection."""
    import shutil

    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True)
    shutil.copy(IMAGES / "deepexemplar_reference_cat.jpg", folder / "cat.jpg")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    Image.fromarray(data.rocket()).save(folder / "rocket.png")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(url, base, photos)``: a server whose models/deepexemplar/indexes holds ``main`` and whose
    extra_model_paths.yaml names another folder holding ``extra``."""
    comfy = comfyui_dir()
    if comfy is None:
        pytest.skip("COMFYUI_DIR is not set to a ComfyUI checkout; the server test needs one "
                    "(see docs/comfyui.md 'Running the tests')")
    from deepexemplar_core.recommend import build_index

    base = tmp_path_factory.mktemp("comfy_recommend")
    weights = prepare_base(base)
    photos = _photos(base / "photos")
    build_index(photos, weights / "indexes" / "main", "lite")
    build_index(photos, base / "elsewhere" / "my_indexes" / "extra", "lite")
    config = base / "extra_model_paths.yaml"
    config.write_text(f"test_paths:\n    base_path: {base / 'elsewhere'}\n"
                      "    deepexemplar_indexes: my_indexes/\n", encoding="utf-8")
    with running_server(comfy, base, ("--extra-model-paths-config", str(config))) as url:
        yield url, base, photos


@pytest.fixture(scope="module")
def client(server):
    return batch.ComfyClient(server[0], retries=2, timeout=120)


def _images(client, entry: dict, kind: str):
    from PIL import Image

    return [Image.open(io.BytesIO(client.download(item))).convert("RGB")
            for output in entry["outputs"].values() for item in output.get("images", [])
            if item["type"] == kind]


def _chroma(image) -> float:
    import numpy as np

    rgb = np.asarray(image, dtype=np.float32) / 255.0
    return float((rgb.max(-1) - rgb.min(-1)).mean())


#: The automatic-reference template.
AUTO = "3_pick_the_reference_automatically"


def _workflow() -> dict:
    return json.loads((REPO / "workflows" / "api" / f"{AUTO}.json").read_text())


def test_auto_colorize_workflow_runs(client):
    """A real choice: the gray portrait gets the colour portrait, not the cat or the rocket,
    and the scores reach the page (Preview Any)."""
    from PIL import Image

    workflow = _workflow()
    entry = client.wait(client.queue_prompt(workflow), 600)
    saved = _images(client, entry, "output")
    target = Image.open(IMAGES / workflow["1"]["inputs"]["image"])
    assert len(saved) == 1 and saved[0].size == target.size and _chroma(saved[0]) > 0.02
    scores = next(node for node, step in workflow.items() if step["class_type"] == "PreviewAny")
    lines = "".join(entry["outputs"][scores]["text"]).splitlines()
    assert lines[0].startswith("rank score") and len(lines) == 4  # k = 3 colour candidates
    portrait = [step["inputs"]["image"] for step in workflow.values()
                if step["class_type"] == "LoadImage"].index("deepexemplar_reference_portrait.jpg")
    assert lines[1].startswith("1 ") and lines[1].endswith(f"candidate {portrait - 1}"), lines


def test_auto_colorize_ui_workflow_as_served(client, server):
    workflow_mod = import_pack_module("comfy_client.workflow")
    ui = get_json(server[0] + f"/api/workflow_templates/{PACK_NAME}/{AUTO}.json")
    prompt = workflow_mod.ui_to_api(ui, get_json(server[0] + "/object_info"))
    prompt["8"]["inputs"]["strength"] = 0.9  # not cached from the API run
    saved = _images(client, client.wait(client.queue_prompt(prompt), 600), "output")
    assert len(saved) == 1 and _chroma(saved[0]) > 0.02


def test_indexes_listed_from_models_folder_and_extra_paths(server):
    info = get_json(server[0] + "/object_info/DeepExemplar_RecommendReference")
    options = info["DeepExemplar_RecommendReference"]["input"]["required"]["index"][1]["options"]
    assert options[0].startswith("none") and {"main", "extra"} <= set(options)


@pytest.mark.parametrize("index", ["main", "extra"])
def test_index_workflow_picks_the_cat(client, server, index):
    workflow = _workflow()
    workflow["7"]["inputs"]["index"] = index
    workflow["1"]["inputs"]["image"] = "deepexemplar_target_cat.jpg"
    del workflow["7"]["inputs"]["candidates"]
    entry = client.wait(client.queue_prompt(workflow), 600)
    scores = next(node for node, step in workflow.items() if step["class_type"] == "PreviewAny")
    lines = "".join(entry["outputs"][scores]["text"]).splitlines()
    assert lines[1].startswith("1 ") and lines[1].endswith("cat.jpg"), lines
    assert len(_images(client, entry, "output")) == 1
