"""``nodes.recommend_logic`` without ComfyUI: an index name never leads out of the index folders."""

from __future__ import annotations

from pack_import import import_pack_module


def test_index_names_resolve_only_inside_their_folders(pack, tmp_path):
    logic = import_pack_module("nodes.recommend_logic")
    indexes = tmp_path / "indexes"
    for index in (indexes / "family", indexes / "group" / "trip", tmp_path / "outside"):
        index.mkdir(parents=True)
        (index / "manifest.json").write_text("{}")
    (indexes / "linked").symlink_to(tmp_path / "outside")
    folders = [str(indexes)]
    assert logic.resolve_index("family", folders) == str((indexes / "family").resolve())
    assert logic.resolve_index("group/trip", folders) == str((indexes / "group" / "trip").resolve())
    for name in ("../outside", "group/../../outside", str(tmp_path / "outside"), "linked"):
        assert logic.resolve_index(name, folders) is None, name
    assert logic.index_options(folders)[1:] == ["family", "group/trip"]  # not the link
