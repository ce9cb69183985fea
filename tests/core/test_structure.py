"""The core's structure: its import graph, what ships in the wheel, and one pipeline for every caller."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from deepexemplar_core import ColorizeConfig, colorize, load_models, prepare_reference
from deepexemplar_core.pipeline import colorize_iter

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "deepexemplar_core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str] = frozenset()) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved).

    ``from package import name`` counts as importing ``package.name`` when that is a module of
    ``modules``, else as importing ``package``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in modules else module)
    return found


def _graph(*roots: Path) -> dict[str, set[str]]:
    modules = {_module_name(p): p for root in roots for p in root.rglob("*.py")}
    return {name: {m for m in _imports(path, set(modules)) if m in modules and m != name}
            for name, path in modules.items()}


@pytest.mark.parametrize("roots", [(CORE,), (CORE, REPO / "nodes")], ids=["core", "nodes"])
def test_import_graph_has_no_cycle(roots):
    graph = _graph(*roots)
    assert len(graph) > 10 and (len(roots) == 1 or "nodes.common" in graph)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_core_never_imports_comfyui_nodes_or_training():
    for path in CORE.rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in ("comfy", "comfy_api", "folder_paths", "nodes", "training"), (
                f"{path.relative_to(REPO)} imports {name}")


UPWARD = tuple(f"deepexemplar_core.{room}" for room in (
    "backbones", "colorizers", "models", "pipeline", "cli", "authors"))


@pytest.mark.parametrize("room", ["weights", "matching"])
def test_weights_and_matching_import_nothing_upward(room):
    """``weights/`` and ``matching/`` sit below the stages: no import of a network, the pipeline,
    the CLI or the authors' release (whose converters import the networks)."""
    graph = _graph(CORE)
    modules = sorted(m for m in graph if m.split(".")[1:2] == [room])
    assert modules, f"no module in {room}/"  # an empty graph would pass anything
    for module in modules:
        upward = sorted(m for m in graph[module] if m.startswith(UPWARD))
        assert not upward, f"{module} imports {upward}"


def test_the_upward_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The check above can fail: a ``weights`` module importing a network is reported."""
    fake = tmp_path / "deepexemplar_core"
    (fake / "weights").mkdir(parents=True)
    (fake / "backbones").mkdir()
    (fake / "backbones" / "__init__.py").write_text("")
    (fake / "weights" / "__init__.py").write_text("from ..backbones import load_backbone\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)  # what _graph() reads
    monkeypatch.setitem(globals(), "CORE", fake)
    with pytest.raises(AssertionError, match="deepexemplar_core.weights imports "
                                             r"\['deepexemplar_core.backbones'\]"):
        test_weights_and_matching_import_nothing_upward("weights")


def test_every_public_name_resolves_from_its_module():
    """The lazy export map names the module that really defines each public name (sorted)."""
    import deepexemplar_core

    names = list(deepexemplar_core._EXPORTS)
    assert names == sorted(names)
    for name in names:
        value = getattr(deepexemplar_core, name)
        target = f"deepexemplar_core.{deepexemplar_core._EXPORTS[name]}"
        assert getattr(value, "__module__", target).startswith(target), (name, value.__module__)
    with pytest.raises(AttributeError, match="no attribute 'read_flows'"):
        deepexemplar_core.read_flows


@pytest.fixture(scope="module")
def lite():
    return load_models("lite")


def _frames(count: int, photo: torch.Tensor) -> list[torch.Tensor]:
    gray = photo.mean(0, keepdim=True)[:, :64, :96]
    return [gray.roll(i % 7, dims=-1) for i in range(count)]


def test_prepared_reference_runs_the_backbone_on_the_targets_only(lite, chelsea_rgb):
    config = ColorizeConfig(size=32)
    prepared = prepare_reference(lite, chelsea_rgb, config)
    seen = []
    original = lite.backbone.pyramid

    def counting(l):
        seen.append(int(l.shape[0]))
        return original(l)

    lite.backbone.pyramid = counting
    try:
        done = sum(1 for _ in colorize_iter(iter(_frames(10, chelsea_rgb)), prepared, lite,
                                            config, chunk_size=4))
    finally:
        del lite.backbone.pyramid
    assert done == 10
    assert seen == [4, 4, 2]  # chunk by chunk from a one-pass iterator, never the reference


def test_prepared_reference_must_fit_the_run(lite, chelsea_rgb):
    prepared = prepare_reference(lite, chelsea_rgb, ColorizeConfig(size=64))
    with pytest.raises(ValueError, match="prepared at size 64.*prepare_reference again"):
        colorize(_frames(1, chelsea_rgb), prepared, lite, ColorizeConfig(size=96))


def test_streaming_equals_one_call(lite, chelsea_rgb):
    config = ColorizeConfig(size=64)
    frames = _frames(5, chelsea_rgb)
    whole = colorize(frames, chelsea_rgb, lite, config)
    streamed = list(colorize_iter(frames, chelsea_rgb, lite, config, chunk_size=2))
    assert [r.index for r in streamed] == list(range(5))
    for a, b in zip(whole.images, streamed, strict=True):
        torch.testing.assert_close(a, b.image, atol=2e-3, rtol=0)


def test_wrong_argument_types_name_the_argument(lite, chelsea_rgb):
    with pytest.raises(TypeError, match="models: expected deepexemplar_core.Models"):
        colorize(chelsea_rgb, chelsea_rgb, "lite")
    with pytest.raises(TypeError, match="config: expected ColorizeConfig"):
        colorize(chelsea_rgb, chelsea_rgb, lite, {"size": 64})
    with pytest.raises(TypeError, match="size: expected an int"):
        ColorizeConfig(size="256")
    with pytest.raises(ValueError, match="size: expected 0 .native. or 32..2048"):
        ColorizeConfig(size=100000)


def _source_copy(tmp_path: Path) -> Path:
    """What the build reads, copied: setuptools writes ``build/`` and ``*.egg-info`` next to the
    sources, and a test must not write into the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for package in ("deepexemplar_core", "cuda_ext"):
        shutil.copytree(REPO / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
    return source


@pytest.mark.e2e
def test_wheel_ships_the_extension_sources(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(_source_copy(tmp_path)),
                          "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "-q"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel, = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in ("ext.cpp", "patchmatch.h", "patchmatch_cpu.cpp", "patchmatch_cuda.cu"):
        assert f"cuda_ext/csrc/{source}" in names
    assert "cuda_ext/__init__.py" in names and "deepexemplar_core/matching/extension.py" in names


@pytest.mark.slow
def test_non_editable_install_builds_and_loads_the_cpu_extension(tmp_path):
    """``pip install .`` (not editable) ships the sources; ``deepexemplar build-ext`` builds them."""
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                          "--no-build-isolation", "--target", str(site),
                          str(_source_copy(tmp_path)), "-q"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    code = ("import deepexemplar_core, cuda_ext; from deepexemplar_core.cli import main; "
            "print(deepexemplar_core.__file__, cuda_ext.SOURCE_DIR); raise SystemExit(main(['build-ext']))")
    env = {**os.environ, "PYTHONPATH": str(site), "DEEPEXEMPLAR_EXT_DIR": str(tmp_path / "ext"),
           "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert str(site) in run.stdout.splitlines()[0]  # the installed copy, not the checkout
    assert "built" in run.stdout and list((tmp_path / "ext").rglob("*.so"))
