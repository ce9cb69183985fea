"""The doctest examples of the pack's ComfyUI-free modules (nodes.*_logic, comfy_client)."""

from __future__ import annotations

import doctest

import pytest
from pack_import import import_pack_module


@pytest.mark.parametrize("name", ["nodes.logic", "nodes.recommend_logic", "nodes.video_logic",
                                  "comfy_client.workflow", "comfy_client.batch"])
def test_doctests(name):
    module = import_pack_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
