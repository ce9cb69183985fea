"""Start a throw-away headless ComfyUI with this pack installed (for tests and the snapshot tool).

The ComfyUI checkout is found through ``$COMFYUI_DIR``; nothing of ComfyUI is part of this
repository. The server runs on 127.0.0.1 with ``--cpu`` and a temporary ``--base-directory``
(custom_nodes, models, input, output, temp and user all live there), so the checkout stays
untouched.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-deep-exemplar"
#: Core ComfyUI node types the example workflows use, besides the pack's own.
CORE_NODES = ("LoadImage", "SaveImage", "PreviewImage", "MaskToImage", "ImageBatch",
              "LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo", "ImageFromBatch",
              "PreviewAny")
PACK_NODES = ("DeepExemplar_LoadGrayVGG", "DeepExemplar_LoadColorNet", "DeepExemplar_DenseMatch",
              "DeepExemplar_SimilarityMaps", "DeepExemplar_ExemplarColorize",
              "DeepExemplar_RecommendReference", "DeepExemplar_VideoTemporalSmooth")


def comfyui_dir() -> Path | None:
    """``$COMFYUI_DIR`` when it holds a ComfyUI checkout (``main.py`` and ``comfy_api/``)."""
    value = os.environ.get("COMFYUI_DIR")
    if not value:
        return None
    path = Path(value).expanduser()
    return path if (path / "main.py").is_file() and (path / "comfy_api").is_dir() else None


def comfyui_python() -> str:
    """The Python that runs the server: ``$COMFYUI_PY`` (e.g. the interpreter of a ComfyUI
    living in another virtual environment), else this one. That Python needs the pack's
    dependencies (``pip install -r requirements.txt``), as in a real installation."""
    return os.environ.get("COMFYUI_PY") or sys.executable


class _ComfyUIModules(importlib.abc.MetaPathFinder):
    """Finds ComfyUI's top-level modules (``comfy``, ``folder_paths``, ...) in its checkout,
    after every other finder, except its ``tests`` package.

    ComfyUI is imported this way rather than by putting its checkout on ``sys.path``: processes
    that the tests spawn inherit ``sys.path`` and address their functions by module name
    (``tests.training.test_train._ddp_worker``), and ComfyUI's own ``tests`` package (a regular
    package, which beats our namespace package wherever it stands on the path) made them fail
    with ``No module named 'tests.training'``.
    """

    def __init__(self, root: Path) -> None:
        self.root = str(root)

    def find_spec(self, name, path=None, target=None):
        if path is not None or name == "tests":  # sub-modules are found through their package
            return None
        return importlib.machinery.PathFinder.find_spec(name, [self.root])


def make_comfyui_importable(root: Path) -> None:
    """Let this process import ComfyUI's modules from ``root`` (once), without putting ``root``
    on ``sys.path`` (see :class:`_ComfyUIModules`)."""
    if not any(isinstance(f, _ComfyUIModules) and f.root == str(root) for f in sys.meta_path):
        sys.meta_path.append(_ComfyUIModules(root))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_base(base: Path) -> Path:
    """Create a base directory with the pack linked into ``custom_nodes`` and an empty ``input``
    folder (the pack itself provides the workflows' example images there when it loads); return
    the ``models/deepexemplar`` folder."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    (base / "input").mkdir(exist_ok=True)
    weights = base / "models" / "deepexemplar"
    weights.mkdir(parents=True, exist_ok=True)
    return weights


def start_server(comfy: Path, base: Path, port: int, log: Path,
                 extra_args: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start ``main.py`` headless on 127.0.0.1:``port``; stdout and stderr go to ``log``."""
    command = [comfyui_python(), str(comfy / "main.py"), "--cpu", "--listen", "127.0.0.1",
               "--port", str(port), "--base-directory", str(base), "--disable-auto-launch",
               "--disable-api-nodes", "--database-url", "sqlite:///:memory:", *extra_args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("DEEPEXEMPLAR_WEIGHTS", None)
    handle = open(log, "wb")  # noqa: SIM115 - closed by stop_server
    process = subprocess.Popen(command, cwd=str(comfy), stdout=handle, stderr=subprocess.STDOUT,
                               env=env)
    process.log_handle = handle
    return process


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Wait until ``/system_stats`` answers; raise with the log tail if the server dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ComfyUI exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/system_stats", timeout=2) as response:
                json.loads(response.read())
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"ComfyUI not ready after {timeout} s:\n{log.read_text()[-4000:]}")


def stop_server(process: subprocess.Popen) -> None:
    """Terminate the server started by :func:`start_server` (this process only)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    process.log_handle.close()


@contextlib.contextmanager
def running_server(comfy: Path, base: Path, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """A headless server on a free port for the ``with`` block: yields its URL, stops it after.

    The log goes to ``base/comfyui.log`` (quoted when the server fails to start).
    """
    port, log = free_port(), base / "comfyui.log"
    process = start_server(comfy, base, port, log, extra_args)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield url
    finally:
        stop_server(process)


def get_json(url: str, timeout: float = 60) -> dict:
    """``GET url`` decoded as JSON."""
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def normalise_object_info(info: dict) -> dict:
    """The subset of ``/object_info`` the workflow tests use, stable across machines.

    Keeps the pack's nodes and :data:`CORE_NODES`; the file lists of ``LoadImage`` depend on the
    input folder and are emptied.
    """
    kept = {name: json.loads(json.dumps(info[name])) for name in (*PACK_NODES, *CORE_NODES)
            if name in info}
    load_image = kept.get("LoadImage", {}).get("input", {}).get("required", {}).get("image")
    if load_image:
        load_image[0] = []
    load_video = kept.get("LoadVideo", {}).get("input", {}).get("required", {}).get("file")
    if load_video:  # only the example clip the pack generates is the same on every machine
        load_video[1]["options"] = [name for name in load_video[1].get("options", [])
                                    if name.startswith("deepexemplar_")]
    return kept


def main() -> int:
    """Regenerate ``tests/nodes/data/object_info.json`` from a fresh server (needs $COMFYUI_DIR)."""
    import tempfile

    comfy = comfyui_dir()
    if comfy is None:
        print("set COMFYUI_DIR to a ComfyUI checkout", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        prepare_base(Path(tmp))
        with running_server(comfy, Path(tmp)) as url:
            info = normalise_object_info(get_json(url + "/object_info", timeout=30))
    target = REPO / "tests" / "nodes" / "data" / "object_info.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {target} ({len(info)} node types)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
