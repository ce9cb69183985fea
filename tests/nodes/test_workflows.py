"""The example workflows: UI/API twins in sync, valid against the node schemas, shippable.

Runs without ComfyUI against ``data/object_info.json``, a snapshot of ``/object_info`` for the
pack's nodes and the core nodes the workflows use. ``test_server.py`` and ``test_v3_nodes.py``
check that the snapshot still equals what a live ComfyUI reports (regenerate it with
``python tests/nodes/comfy_server.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pack_import import import_pack_module

workflow_tools = import_pack_module("comfy_client.workflow")
api_to_ui, check_api_workflow = workflow_tools.api_to_ui, workflow_tools.check_api_workflow
ui_to_api, widget_slots = workflow_tools.ui_to_api, workflow_tools.widget_slots

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
UI_FILES = sorted(WORKFLOWS.glob("*.json"))


@pytest.fixture(scope="module")
def object_info() -> dict:
    return json.loads((Path(__file__).parent / "data" / "object_info.json").read_text())


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_workflow_has_a_twin():
    names = {p.stem for p in API_FILES}
    assert {"1_colorize_a_photo", "2_colorize_several_photos", "4_inspect_the_matching"} <= names
    assert names == {p.stem for p in UI_FILES}, "every UI workflow needs an API twin and back"


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_fits_schemas(path, object_info):
    assert check_api_workflow(_load(path), object_info) == []


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_twin_converts_to_api_twin(path, object_info):
    assert ui_to_api(_load(path), object_info) == _load(WORKFLOWS / "api" / path.name)


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_workflow_runs_on_fresh_install(path, object_info, logic):
    """Built-in models only, and every loaded image ships in workflows/images/."""
    for node in _load(path).values():
        inputs = node["inputs"]
        if node["class_type"] == "DeepExemplar_LoadGrayVGG":
            assert inputs["weights"] == logic.BUILTIN_LITE and inputs["allow_download"] is False
        if node["class_type"] == "DeepExemplar_LoadColorNet":
            assert inputs["weights"] == logic.NO_COLORNET and inputs["allow_download"] is False
        if node["class_type"] == "LoadImage":
            assert (WORKFLOWS / "images" / inputs["image"]).is_file(), inputs["image"]


def test_pack_nodes_in_snapshot_offer_builtins(object_info, logic):
    gray = object_info["DeepExemplar_LoadGrayVGG"]["input"]["required"]["weights"][1]["options"]
    color = object_info["DeepExemplar_LoadColorNet"]["input"]["required"]["weights"][1]["options"]
    assert gray[:2] == [logic.BUILTIN_LITE, logic.PAPER_BACKBONE_AUTO]
    assert color[:2] == [logic.NO_COLORNET, logic.PAPER_COLORNET_AUTO]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda wf: wf["5"].__setitem__("class_type", "DeepExemplar_Colorise"),
         "unknown node type 'DeepExemplar_Colorise'"),
        (lambda wf: wf["5"]["inputs"].__setitem__("colour_strength", 1.0),
         "no input named 'colour_strength'"),
        (lambda wf: wf["5"]["inputs"].pop("backbone"), "required input 'backbone' missing"),
        (lambda wf: wf["5"]["inputs"].__setitem__("backbone", ["4", 0]),
         "expects DEEPEXEMPLAR_BACKBONE, linked to a DEEPEXEMPLAR_COLORNET output"),
        (lambda wf: wf["5"]["inputs"].__setitem__("upsample", "nearest"),
         "'nearest' is not one of its options"),
        (lambda wf: wf["6"]["inputs"].__setitem__("images", ["9", 0]), "links to missing node 9"),
    ],
)
def test_checker_reports_broken_workflows(object_info, edit, message):
    workflow = _load(WORKFLOWS / "api" / "1_colorize_a_photo.json")
    edit(workflow)
    problems = check_api_workflow(workflow, object_info)
    assert any(message in p for p in problems), problems


def test_ui_round_trip_and_widget_order(object_info):
    api = _load(WORKFLOWS / "api" / "4_inspect_the_matching.json")
    ui = api_to_ui(api, object_info)
    assert ui_to_api(ui, object_info) == api
    assert widget_slots(object_info["LoadImage"]) == [("image", 1)]
    colorize = next(n for n in ui["nodes"] if n["type"] == "DeepExemplar_ExemplarColorize")
    assert colorize["widgets_values"] == [1.0, 256, "guided"]
    assert {s["name"] for s in colorize["inputs"]} == {
        "target", "reference", "backbone", "colornet", "correspondence", "similarity", "regions",
        "keyframes"}


def test_ui_widget_count_mismatch_is_an_error(object_info):
    WorkflowError = workflow_tools.WorkflowError  # noqa: N806

    ui = _load(WORKFLOWS / "1_colorize_a_photo.json")
    node = next(n for n in ui["nodes"] if n["type"] == "DeepExemplar_ExemplarColorize")
    node["widgets_values"].append("extra")
    with pytest.raises(WorkflowError, match="4 widget values, the schema has 3"):
        ui_to_api(ui, object_info)


IMAGES = WORKFLOWS / "images"


def test_example_images_are_small_and_licensed():
    """Every shipped example image is under 200 KB and named, with its licence, in LICENSE."""
    licence = (IMAGES / "LICENSE").read_text(encoding="utf-8")
    images = sorted([*IMAGES.glob("*.jpg"), *IMAGES.glob("*.png")])
    assert len(images) >= 7
    for path in images:
        assert path.stat().st_size < 200_000, path.name
        assert path.name in licence, f"{path.name} has no licence entry in {IMAGES / 'LICENSE'}"
    assert "CC0" in licence and "public domain" in licence


def test_recommendation_demo_chooses_among_colour_photos_and_shows_scores(object_info):
    """The automatic-reference workflow: several colour candidates (no gray one), one of them a
    portrait for the gray portrait target, and the scores output shown by a Preview node."""
    import numpy as np
    from PIL import Image

    api = _load(WORKFLOWS / "api" / "3_pick_the_reference_automatically.json")
    recommend = next(k for k, n in api.items()
                     if n["class_type"] == "DeepExemplar_RecommendReference")

    def sources(node_id: str) -> list[str]:  # the LoadImage images feeding a node
        node = api[node_id]
        if node["class_type"] == "LoadImage":
            return [node["inputs"]["image"]]
        return [name for value in node["inputs"].values() if isinstance(value, list)
                for name in sources(value[0])]

    candidates = sources(api[recommend]["inputs"]["candidates"][0])
    assert len(candidates) >= 3 and "deepexemplar_reference_portrait.jpg" in candidates
    for name in candidates:
        rgb = np.asarray(Image.open(IMAGES / name).convert("RGB"), dtype=np.float32) / 255
        assert float((rgb.max(-1) - rgb.min(-1)).mean()) > 0.05, f"{name} is not a colour photo"
    shown = [n for n in api.values() if n["class_type"] in ("PreviewAny", "PreviewImage")
             and n["inputs"].get("source", n["inputs"].get("images")) == [recommend, 2]]
    assert shown, "the scores output goes nowhere"


def test_templates_are_named_for_what_they_do_and_numbered():
    """ComfyUI 0.3.64 shows a pack's template by its file name (title and description) in the
    server's directory order: names say what each does, numbered from the simplest."""
    stems = [p.stem for p in UI_FILES]
    assert [int(s.split("_", 1)[0]) for s in stems] == list(range(1, len(stems) + 1)), stems
    for stem in stems:
        words = stem.split("_")[1:]
        assert len(words) >= 3 and all(w.isalpha() and w.islower() for w in words), stem
