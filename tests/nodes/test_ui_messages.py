"""Issue 9, items 13 and 15: what the page tells users (missing weights, node search).

Item 13: a ``paper:`` loader entry without files must say exactly what to do: the
``deepexemplar convert`` command into ``models/deepexemplar``, or the setting that names a
download repository ($DEEPEXEMPLAR_HF_REPO / ``repo_id`` in the config file) and then
``allow_download``; the ``allow_download`` tooltip must say what the switch really does.
Item 15: every node carries the words users search for (the frontend check of the real search
box is in ``test_frontend.py``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pack_import import import_pack_module

SNAPSHOT = Path(__file__).parent / "data" / "object_info.json"


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """No paper weights anywhere, no repository configured; returns the models folder."""
    monkeypatch.delenv("DEEPEXEMPLAR_WEIGHTS", raising=False)
    monkeypatch.delenv("DEEPEXEMPLAR_HF_REPO", raising=False)
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    models = tmp_path / "models" / "deepexemplar"
    models.mkdir(parents=True)
    return models


def _message(logic, loader: str, allow_download: bool, models: Path) -> str:
    load = logic.load_backbone if loader == "gray_vgg" else logic.load_colornet
    choice = logic.PAPER_BACKBONE_AUTO if loader == "gray_vgg" else logic.PAPER_COLORNET_AUTO
    with pytest.raises(logic.NodeInputError) as caught:
        load(choice, None, allow_download=allow_download, search_dirs=[str(models)])
    return str(caught.value)


@pytest.mark.parametrize(("loader", "authors_file"), [
    ("gray_vgg", "vgg19_bn_gray_ft_iter_150000.caffemodel"), ("colornet", "example_net.pth")])
@pytest.mark.parametrize("allow_download", [False, True])
def test_missing_weights_without_repo_names_convert_and_repo_setting(
        logic, no_weights, loader, authors_file, allow_download):
    message = _message(logic, loader, allow_download, no_weights)
    fix = message.split(" Fix: ", 1)[1]
    assert f"deepexemplar convert /path/to/{authors_file} -o {no_weights}" in fix
    # with allow_download on or off, the fix names the setting that provides a repository
    assert "$DEEPEXEMPLAR_HF_REPO" in fix and "config.json" in fix
    assert "turn allow_download on" in fix
    assert "--allow-download" not in message and "allow_download=True" not in message


def test_missing_weights_with_repo_asks_for_the_switch(logic, no_weights, monkeypatch):
    monkeypatch.setenv("DEEPEXEMPLAR_HF_REPO", "owner/converted-weights")
    fix = _message(logic, "gray_vgg", False, no_weights).split(" Fix: ", 1)[1]
    assert ("turn allow_download on to download vgg19_bn_gray.safetensors from "
            "owner/converted-weights") in fix


def test_failed_download_names_the_repository(logic, no_weights, monkeypatch):
    import huggingface_hub

    def unavailable(repo_id, filename, **kwargs):
        raise OSError(f"{repo_id}/{filename}: no such file on the Hub")

    monkeypatch.setenv("DEEPEXEMPLAR_HF_REPO", "owner/converted-weights")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unavailable)
    message = _message(logic, "colornet", True, no_weights)
    assert ("The download failed: OSError: owner/converted-weights/example_net.safetensors"
            in message)
    assert "check that the Hugging Face repository owner/converted-weights" in message


def test_allow_download_tooltip_says_what_it_does():
    info = json.loads(SNAPSHOT.read_text())
    for node in ("DeepExemplar_LoadGrayVGG", "DeepExemplar_LoadColorNet"):
        tooltip = info[node]["input"]["required"]["allow_download"][1]["tooltip"]
        assert "$DEEPEXEMPLAR_HF_REPO" in tooltip and "deepexemplar convert" in tooltip
        assert "No repository is set by default" in tooltip


def test_every_node_is_found_by_the_words_users_search(comfy):
    """Display names carry 'Exemplar Colorization' (searched by every frontend); the search
    aliases (searched by ComfyUI versions whose io.Schema has them) add 'reference'."""
    v3, _ = comfy
    import dataclasses

    from comfy_api.latest import io

    supported = "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}
    pack_nodes = asyncio.run(v3.DeepExemplarExtension().get_node_list())
    assert set(v3.NODES) < set(pack_nodes)
    for node in pack_nodes:
        schema = node.define_schema()
        assert schema.display_name.startswith("Exemplar Colorization: "), schema.node_id
        if node in v3.NODES:  # the five colorization nodes say what they do with the reference
            assert "colori" in schema.description.lower(), schema.node_id
            assert "reference" in schema.description, schema.node_id
        aliases = import_pack_module("nodes.common").SEARCH_ALIASES[schema.node_id.removeprefix("DeepExemplar_")]
        assert {"colorization", "colorize", "exemplar", "reference"} <= set(aliases)
        if supported:
            assert schema.search_aliases == aliases
