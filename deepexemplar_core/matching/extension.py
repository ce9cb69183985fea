"""Just-in-time build and loading of the compiled ``cuda_ext`` extension.

The extension is compiled once per machine with :func:`torch.utils.cpp_extension.load` into a
per-user cache, ``<cache root>/ext/<key>`` (or ``$DEEPEXEMPLAR_EXT_DIR/<key>``), where
``<key>`` hashes the torch version, the CUDA version, the Python ABI, the sources and the build
flags. Loading a cached build only opens the shared library (no compiler, well under a second).
The CUDA sources are compiled only when CUDA is usable: ``torch.cuda.is_available()`` and a
toolkit (``CUDA_HOME`` with ``nvcc``). ``TORCH_CUDA_ARCH_LIST`` is respected by torch.

Nothing here raises for a missing compiler: :func:`load` and :func:`load_cached_only` return
``None`` and record why (:func:`last_error`), and the op wrappers fall back to PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from ..files import cache_root, sha256_file, write_text_atomic

logger = logging.getLogger(__name__)

EXT_NAME = "deepexemplar_ext"
"""Prefix of the compiled module name (``TORCH_EXTENSION_NAME``)."""

_CPP_SOURCES = ("ext.cpp", "patchmatch_cpu.cpp")
_CUDA_SOURCES = ("patchmatch_cuda.cu",)
_HEADERS = ("patchmatch.h",)
# at::parallel_for is inline OpenMP code: without -fopenmp it would run on one thread.
_CFLAGS = ("-O3", "-fopenmp") if sys.platform.startswith("linux") else ("-O3",)
_LDFLAGS = ("-fopenmp",) if sys.platform.startswith("linux") else ()
_CUDA_CFLAGS = ("-O3", "-lineinfo")  # no fast math: divisions as on the CPU

_lock = threading.Lock()
_state: dict[str, object] = {"loaded": None, "error": None}


@dataclass(frozen=True)
class BuildPlan:
    """What a build of the extension compiles and where it goes.

    Attributes:
        name: module name passed to ``cpp_extension.load`` (``TORCH_EXTENSION_NAME``).
        directory: cache directory of this build.
        sources: absolute paths of the compiled sources.
        with_cuda: whether the CUDA kernels are compiled.
        reason: why CUDA is (not) part of the build, in words.
    """

    name: str
    directory: Path
    sources: tuple[Path, ...]
    with_cuda: bool
    reason: str

    @property
    def library(self) -> Path:
        """Path of the shared library a finished build leaves in :attr:`directory`."""
        return self.directory / f"{self.name}.so"


def source_dir() -> Path:
    """Directory of the C++/CUDA sources: the installed ``cuda_ext`` package's ``csrc``.

    The pack inside ComfyUI imports the core from its own folder without installing it; there the
    checkout's ``cuda_ext/csrc`` beside ``deepexemplar_core`` is used.
    """
    try:
        from cuda_ext import SOURCE_DIR
    except ImportError:
        return Path(__file__).resolve().parents[2] / "cuda_ext" / "csrc"
    return SOURCE_DIR


def build_root() -> Path:
    """Root of the build cache: ``$DEEPEXEMPLAR_EXT_DIR``, else ``<cache root>/ext``."""
    override = os.environ.get("DEEPEXEMPLAR_EXT_DIR")
    if override:
        return Path(override).expanduser()
    return cache_root() / "ext"


def cuda_toolkit() -> tuple[bool, str]:
    """Whether the CUDA kernels can be built here, and why (one line)."""
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False"
    from torch.utils import cpp_extension

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or cpp_extension.CUDA_HOME
    if not home:
        return False, "no CUDA toolkit found (set CUDA_HOME to the directory holding bin/nvcc)"
    nvcc = Path(home) / "bin" / ("nvcc.exe" if sys.platform == "win32" else "nvcc")
    if not nvcc.is_file():
        return False, f"CUDA_HOME={home} has no bin/nvcc"
    return True, f"CUDA {torch.version.cuda} device and nvcc at {nvcc}"


def plan() -> BuildPlan:
    """The build for this machine: sources, flags and the cache key that names it."""
    with_cuda, reason = cuda_toolkit()
    names = _CPP_SOURCES + (_CUDA_SOURCES if with_cuda else ())
    digest = hashlib.sha256()
    for part in (
        torch.__version__,
        str(torch.version.cuda),
        f"{sys.implementation.cache_tag}-{platform.machine()}",
        str(with_cuda),
        os.environ.get("TORCH_CUDA_ARCH_LIST", "") if with_cuda else "",
        " ".join(_CFLAGS + _LDFLAGS + (_CUDA_CFLAGS if with_cuda else ())),
    ):
        digest.update(part.encode() + b"\0")
    sources = source_dir()
    for name in sorted(names + _HEADERS):
        digest.update(name.encode() + b"\0" + (sources / name).read_bytes())
    key = digest.hexdigest()[:16]
    return BuildPlan(
        name=f"{EXT_NAME}_{key}",
        directory=build_root() / key,
        sources=tuple(sources / n for n in names),
        with_cuda=with_cuda,
        reason=reason,
    )


def _checksum_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def damage(library: Path) -> str | None:
    """Why a cached library must not be opened (truncated or altered since the build), or None.

    Opening a truncated shared library can kill the process (SIGBUS), so its sha256 is checked
    against the one recorded right after the build before it is ever opened.
    """
    recorded = _checksum_path(library)
    if not recorded.is_file():
        return f"{library} has no recorded checksum (built by an older version)"
    if sha256_file(library) != recorded.read_text(encoding="ascii").strip():
        return f"{library} is damaged (truncated or altered since it was built)"
    return None


def _open(library: Path) -> None:
    problem = damage(library)
    if problem:
        raise OSError(f"{problem}; rebuild it with `deepexemplar build-ext --force`")
    torch.ops.load_library(str(library))


def _compile(p: BuildPlan, verbose: bool) -> Path:
    from torch.utils import cpp_extension

    p.directory.mkdir(parents=True, exist_ok=True)
    defines = ["-DDEEPEXEMPLAR_WITH_CUDA"] if p.with_cuda else []
    cpp_extension.load(
        name=p.name,
        sources=[str(s) for s in p.sources],
        extra_cflags=list(_CFLAGS) + defines,
        extra_cuda_cflags=list(_CUDA_CFLAGS) + defines,
        extra_ldflags=list(_LDFLAGS),
        build_directory=str(p.directory),
        with_cuda=p.with_cuda,
        is_python_module=False,
        verbose=verbose,
    )
    write_text_atomic(_checksum_path(p.library), sha256_file(p.library) + "\n")
    return p.library


def load_cached_only() -> bool:
    """Load the extension if a finished build is in the cache; never compiles.

    Returns:
        True when the ops are available in ``torch.ops.deepexemplar``.
    """
    with _lock:
        if _state["loaded"] is not None:
            return True
        try:
            p = plan()
        except OSError as e:  # sources missing (e.g. an installed wheel without cuda_ext/)
            _state["error"] = f"sources not found: {e}"
            return False
        if not p.library.is_file():
            _state["error"] = f"no cached build at {p.library}; run `deepexemplar build-ext`"
            return False
        try:
            _open(p.library)
        except (OSError, RuntimeError) as e:
            _state["error"] = f"cached build {p.library} failed to load: {e}"
            return False
        _state["loaded"] = p
        return True


def build(force: bool = False, verbose: bool = False) -> BuildPlan:
    """Compile (unless cached) and load the extension.

    Args:
        force: delete this machine's cached build first and compile again.
        verbose: show the compiler commands (ninja output).

    Returns:
        The plan of the loaded build (``.library`` is the shared library).

    Raises:
        RuntimeError: compilation or loading failed (message from the compiler), or a different
            build was already loaded in this process (restart Python to load a rebuilt one).
    """
    p = plan()
    with _lock:
        loaded = _state["loaded"]
        if loaded is not None and not force:
            return loaded  # type: ignore[return-value]
        if loaded is not None:
            raise RuntimeError("build-ext: an extension is already loaded in this process; "
                               "rebuild from a fresh process (`deepexemplar build-ext --force`)")
        if p.library.is_file() and (force or damage(p.library)):
            p.library.unlink()
        if not p.library.is_file():
            logger.info("compiling the deepexemplar extension into %s (%s)", p.directory, p.reason)
            try:
                _compile(p, verbose)
            except Exception as e:  # compiler/ninja errors surface as many exception types
                raise RuntimeError(f"build-ext: compiling the extension failed: {e}") from e
        _open(p.library)
        _state["loaded"] = p
        _state["error"] = None
        return p


def load() -> bool:
    """Load the extension, compiling it on first use; never raises.

    Returns:
        True when the ops are available; otherwise :func:`last_error` says why.
    """
    if load_cached_only():
        return True
    if _state.get("build_failed"):
        return False  # one failed compile per process is enough
    try:
        build()
    except Exception as e:  # no compiler, no ninja, bad toolkit: all mean "fall back"
        _state["build_failed"] = True
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        _state["error"] = text if len(text) <= 300 else text[:297] + "..."
        return False
    return True


def loaded_plan() -> BuildPlan | None:
    """The build loaded in this process, or None."""
    return _state["loaded"]  # type: ignore[return-value]


def last_error() -> str | None:
    """Why the last load attempt failed (one line), or None."""
    return _state["error"]  # type: ignore[return-value]
