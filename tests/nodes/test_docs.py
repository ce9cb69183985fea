"""The node docs say what the nodes and workflows are (issue 17, item 22): every input name of
every node appears in its page, the workflow table lists the shipped workflows, and counts
written in words match them. Runs without ComfyUI, against ``data/object_info.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
WORKFLOWS = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
#: The page that documents each node's inputs.
PAGES = {"DeepExemplar_RecommendReference": "recommend.md",
         "DeepExemplar_VideoTemporalSmooth": "video.md"}
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def _info() -> dict:
    return json.loads((Path(__file__).parent / "data" / "object_info.json").read_text())


@pytest.mark.parametrize("node", sorted(n for n in _info() if n.startswith("DeepExemplar_")))
def test_every_input_name_is_in_the_docs(node):
    """Scripts and API workflows use the input names (``lam``, not its label "lambda")."""
    text = (DOCS / PAGES.get(node, "comfyui.md")).read_text(encoding="utf-8")
    inputs = _info()[node]["input"]
    names = [name for section in ("required", "optional") for name in inputs.get(section, {})]
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"{node}: inputs {missing} are not named in docs/{PAGES.get(node, 'comfyui.md')}"


def test_workflow_table_lists_the_workflows():
    text = (DOCS / "comfyui.md").read_text(encoding="utf-8")
    table = text[text.index("| workflow | what it shows |"):]
    table = table[:table.index("\n\n")]
    assert re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE) == WORKFLOWS


def test_workflow_counts_in_words_match():
    text = (DOCS / "comfyui.md").read_text(encoding="utf-8")
    section = text[text.index("## Example workflows"):text.index("## Batch runs")]
    counts = re.findall(r"\b(?:holds|All|all) (two|three|four|five|six|seven|eight)\b", section)
    assert counts and all(NUMBERS[c] == len(WORKFLOWS) for c in counts), counts


def test_training_readme_says_what_the_core_and_nodes_do_with_a_lite_colour_network():
    """The core warns about a colour network trained on another backbone (``check_compatible``)
    and the nodes accept a network trained on the lite backbone with it."""
    text = (REPO / "training" / "README.md").read_text(encoding="utf-8")
    assert "does not yet warn" not in text and "refuses it with the\nlite backbone" not in text
    assert "trained_on_backbone" in text and "warning" in text
