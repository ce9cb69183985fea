"""A real headless ComfyUI with the pack installed: node list, every API workflow, errors, client.

Needs ``$COMFYUI_DIR`` (a ComfyUI checkout whose requirements are installed in this Python);
skipped with the reason otherwise. The server runs on 127.0.0.1 with ``--cpu`` and a temporary
``--base-directory``; the pack is symlinked into its ``custom_nodes``, the example images are
copied into its ``input`` folder and generated paper weights are provided two ways: the gray VGG
in ``models/deepexemplar``, the colour network in a folder named by ``extra_model_paths.yaml``.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from comfy_server import (
    PACK_NAME,
    PACK_NODES,
    comfyui_dir,
    get_json,
    normalise_object_info,
    prepare_base,
    running_server,
)
from pack_import import import_pack_module
from PIL import Image

pytestmark = [pytest.mark.comfyui, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
API = REPO / "workflows" / "api"
batch = import_pack_module("comfy_client.batch")


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """``(url, base directory, log file)`` of a running server; stopped after the module."""
    comfy = comfyui_dir()
    if comfy is None:
        pytest.skip("COMFYUI_DIR is not set to a ComfyUI checkout; the server test needs one "
                    "(see docs/comfyui.md 'Running the tests')")
    tiny_paper_weights = request.getfixturevalue("tiny_paper_weights")
    base = tmp_path_factory.mktemp("comfy_base")
    weights = prepare_base(base)
    (weights / tiny_paper_weights["gray_vgg"].name).symlink_to(tiny_paper_weights["gray_vgg"])
    elsewhere = base / "elsewhere" / "deepexemplar"
    elsewhere.mkdir(parents=True)
    (elsewhere / tiny_paper_weights["colornet"].name).symlink_to(tiny_paper_weights["colornet"])
    config = base / "extra_model_paths.yaml"
    config.write_text(f"test_paths:\n    base_path: {base / 'elsewhere'}\n"
                      "    deepexemplar: deepexemplar/\n", encoding="utf-8")
    with running_server(comfy, base, ("--extra-model-paths-config", str(config))) as url:
        yield url, base, base / "comfyui.log"


@pytest.fixture(scope="module")
def client(server):
    return batch.ComfyClient(server[0], retries=2, timeout=120)


def _workflow(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text())


def _run(client, workflow: dict, timeout: float = 600) -> dict:
    return client.wait(client.queue_prompt(workflow), timeout)


def _saved_images(client, entry: dict, kind: str = "output"):
    from PIL import Image

    images = []
    for output in entry["outputs"].values():
        for item in output.get("images", []):
            if item["type"] == kind:
                images.append(Image.open(io.BytesIO(client.download(item))).convert("RGB"))
    return images


def _chroma(image) -> float:
    import numpy as np

    rgb = np.asarray(image, dtype=np.float32) / 255.0
    return float((rgb.max(-1) - rgb.min(-1)).mean())


def test_object_info_lists_every_node_without_import_failure(server):
    url, _, log = server
    info = get_json(url + "/object_info")
    missing = [n for n in PACK_NODES if n not in info]
    assert not missing, f"missing nodes {missing}; log:\n{log.read_text()[-3000:]}"
    pack_lines = [line for line in log.read_text().splitlines() if PACK_NAME in line]
    assert pack_lines and not any("IMPORT FAILED" in line or "Cannot import" in line
                                  for line in pack_lines), pack_lines
    images = info["LoadImage"]["input"]["required"]["image"][0]
    shipped = sorted(p.name for p in (REPO / "workflows" / "images").glob("deepexemplar_*.*g"))
    assert set(shipped) <= set(images), "the pack must provide its example images in input/"
    snapshot = json.loads((Path(__file__).parent / "data" / "object_info.json").read_text())
    live = normalise_object_info(info)
    for name, entry in snapshot.items():
        if name.startswith("DeepExemplar_"):
            entry = dict(entry, input=dict(entry["input"]))  # weight lists differ: files here
            for loader_key in ("required",):
                entry["input"][loader_key] = {k: v for k, v in entry["input"][loader_key].items()
                                              if k != "weights"}
            have = dict(live[name], input=dict(live[name]["input"]))
            have["input"]["required"] = {k: v for k, v in have["input"]["required"].items()
                                         if k != "weights"}
            assert have == entry, f"{name} changed: run `python tests/nodes/comfy_server.py`"
        else:
            assert live[name]["input_order"] == entry["input_order"], name


def test_weights_listed_from_models_folder_and_extra_paths(server, tiny_paper_weights):
    files = {tiny_paper_weights[name].name for name in ("gray_vgg", "colornet")}
    assert files <= set(get_json(server[0] + "/models/deepexemplar"))
    # each loader lists the files of its own network (here found by their tensor names)
    for node, name in (("LoadColorNet", "colornet"), ("LoadGrayVGG", "gray_vgg")):
        info = get_json(server[0] + f"/object_info/DeepExemplar_{node}")
        options = info[f"DeepExemplar_{node}"]["input"]["required"]["weights"][1]["options"]
        assert (files & set(options)) == {tiny_paper_weights[name].name}, (node, options)


def test_templates_are_served(server):
    templates = get_json(server[0] + "/api/workflow_templates")
    assert sorted(templates[PACK_NAME]) == sorted(p.stem for p in API.glob("*.json"))
    ui = get_json(server[0] + f"/api/workflow_templates/{PACK_NAME}/1_colorize_a_photo.json")
    assert any(n["type"] == "DeepExemplar_ExemplarColorize" for n in ui["nodes"])


SEVERAL = "7_colorize_with_several_references"


@pytest.mark.parametrize(("name", "count"), [("1_colorize_a_photo", 1),
                                             ("4_inspect_the_matching", 1),
                                             ("2_colorize_several_photos", 3),
                                             (SEVERAL, 1)])
def test_api_workflow_runs(client, server, name, count):
    workflow = _workflow(name)
    entry = _run(client, workflow)
    saved = _saved_images(client, entry)
    assert len(saved) == count
    from PIL import Image

    target = Image.open(REPO / "workflows" / "images" / workflow["1"]["inputs"]["image"])
    for image in saved:
        assert image.size == target.size
        assert _chroma(image) > 0.02, "the result should be in colour"
    if name == "4_inspect_the_matching":
        from deepexemplar_core.pipeline import working_size

        # the working size the core uses for the workflow's size 256
        height, width = working_size(target.height, target.width, 256)
        assert len(_saved_images(client, entry, "temp")) == 3
        previews = {node: _saved_images(client, {"outputs": {node: entry["outputs"][node]}},
                                        "temp")[0] for node in ("7", "8", "10")}
        assert previews["7"].size == (5 * width, 2 * height)  # 2 directions x 5 levels of maps
        assert previews["8"].size == (width, height) and _chroma(previews["8"]) > 0.02  # warped
        assert previews["10"].size == target.size  # the confidence mask, at the target's size
    if name == SEVERAL:
        _check_choice(client, entry, target)


def _check_choice(client, entry: dict, target) -> None:
    """The choice preview of the several-references workflow: reference 1 (red) inside the
    region drawn in the target's alpha channel, reference 2 (green) on most of the rest."""
    import numpy as np

    choice = _saved_images(client, {"outputs": {"9": entry["outputs"]["9"]}}, "temp")[0]
    assert choice.size == target.size
    rgb = np.asarray(choice, dtype=np.int16)
    red = np.abs(rgb - (230, 25, 75)).sum(-1) < 12
    green = np.abs(rgb - (60, 180, 75)).sum(-1) < 12
    region = np.asarray(target.getchannel("A")) == 0
    assert red[region].mean() > 0.99 and green[~region].mean() > 0.9, (
        red[region].mean(), green[~region].mean())


@pytest.mark.parametrize(("name", "count"), [("1_colorize_a_photo", 1),
                                             ("4_inspect_the_matching", 1),
                                             ("2_colorize_several_photos", 3),
                                             (SEVERAL, 1)])
def test_ui_workflow_runs_as_served(client, server, name, count):
    """The UI file, as the template browser serves it, converted with the live schemas, runs."""
    workflow_mod = import_pack_module("comfy_client.workflow")
    ui = get_json(server[0] + f"/api/workflow_templates/{PACK_NAME}/{name}.json")
    prompt = workflow_mod.ui_to_api(ui, get_json(server[0] + "/object_info"))
    saved = _saved_images(client, _run(client, prompt))
    assert len(saved) == count
    assert all(_chroma(image) > 0.02 for image in saved)


def test_paper_weights_workflow(client, tiny_paper_weights):
    workflow = _workflow("1_colorize_a_photo")
    workflow["3"]["inputs"]["weights"] = tiny_paper_weights["gray_vgg"].name
    workflow["4"]["inputs"]["weights"] = tiny_paper_weights["colornet"].name
    workflow["5"]["inputs"]["size"] = 64
    saved = _saved_images(client, _run(client, workflow))
    assert len(saved) == 1 and saved[0].size == (192, 192)


def test_bad_input_names_node_and_server_keeps_running(client, server):
    workflow = _workflow("1_colorize_a_photo")
    workflow["2"]["inputs"]["image"] = "deepexemplar_target_cat_2.jpg"  # gray "reference"
    with pytest.raises(batch.ComfyError, match=r"DeepExemplar Colorize: reference: has "
                                               r"no colour.*swapped"):
        _run(client, workflow)
    workflow = _workflow("1_colorize_a_photo")
    workflow["3"]["inputs"]["weights"] = "missing.safetensors"  # V3 nodes skip combo checks
    with pytest.raises(batch.ComfyError, match=r"DeepExemplar Load Backbone: the file "
                                               r"'missing.safetensors' is no longer in models/"):
        _run(client, workflow)
    assert "system" in get_json(server[0] + "/system_stats")
    assert len(_saved_images(client, _run(client, _workflow("1_colorize_a_photo")))) == 1


def test_batch_client_folder_run(client, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("deepexemplar_target_cat_2.jpg", "deepexemplar_target_cat_3.jpg"):
        shutil.copy2(REPO / "workflows" / "images" / name, inputs / name)
    lines = []
    results = batch.run_batch(
        client, _workflow("1_colorize_a_photo"), sorted(inputs.iterdir()), tmp_path / "out",
        reference=REPO / "workflows" / "images" / "deepexemplar_reference_cat.jpg",
        report=lines.append)
    assert [r.ok for r in results] == [True, True], [r.error for r in results]
    assert all(Path(f).is_file() for r in results for f in r.outputs)
    assert sum("queued" in line for line in lines) == 2


def test_batch_client_fills_each_reference_node_in_title_order(client, tmp_path):
    images = REPO / "workflows" / "images"
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy2(images / "deepexemplar_target_two_photos.png", inputs / "two.png")
    workflow = _workflow("7_colorize_with_several_references")
    cat = images / "deepexemplar_reference_cat.jpg"
    with pytest.raises(batch.ComfyError, match=r"1 --reference image\(s\) for 2 reference "
                                               r"node\(s\) \('Load reference 1 \(portrait\)', "
                                               r"'Load reference 2 \(cat\)'\)"):
        batch.run_batch(client, workflow, [inputs / "two.png"], tmp_path / "x", reference=cat)
    assert not (tmp_path / "x").exists()
    results = batch.run_batch(client, workflow, [inputs / "two.png"], tmp_path / "out",
                              reference=[images / "deepexemplar_reference_portrait.jpg", cat],
                              report=lambda line: None)
    assert [r.ok for r in results] == [True], [r.error for r in results]
    # a jpg target has no painted region (Load Image's empty mask): the references choose
    Image.open(inputs / "two.png").convert("L").save(inputs / "plain.jpg")
    results = batch.run_batch(client, workflow, [inputs / "plain.jpg"], tmp_path / "plain",
                              reference=[images / "deepexemplar_reference_portrait.jpg", cat],
                              report=lambda line: None)
    assert [r.ok for r in results] == [True], [r.error for r in results]


def test_interrupt_stops_a_running_prompt(client, server):
    workflow = _workflow("2_colorize_several_photos")
    workflow["9"]["inputs"]["strength"] = 0.95  # not cached: the colorize node must run again
    workflow["9"]["inputs"]["size"] = 768  # long enough (seconds) to be interrupted mid-run
    prompt_id = client.queue_prompt(workflow)
    deadline = time.monotonic() + 60
    while not get_json(server[0] + "/queue")["queue_running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    urllib.request.urlopen(urllib.request.Request(server[0] + "/interrupt", data=b"",
                                                  method="POST"), timeout=10).close()
    with pytest.raises(batch.ComfyError, match="execution_interrupted"):
        client.wait(prompt_id, 300)
    assert "system" in get_json(server[0] + "/system_stats")
