"""Files on disk: the one cache root, the one atomic writer, the one hashing helper and the one
containment check of paths read from files (:func:`resolve_inside`).

Every file the project writes (images, weights, manifests, authors' formats, indexes, videos,
checkpoints) goes through :func:`atomic_path`: the content is written to a hidden temporary file
in the destination folder and moved over the destination with ``os.replace`` only when complete,
so a failure, Ctrl-C or SIGTERM never leaves a partial file.

The cache root is ``$DEEPEXEMPLAR_CACHE`` or ``$XDG_CACHE_HOME/deepexemplar`` (default
``~/.cache/deepexemplar``); weights live in ``<root>/weights`` and compiled extensions in
``<root>/ext``, for every model family alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "PathOutsideError",
    "atomic_folder",
    "file_in_the_way",
    "atomic_path",
    "atomic_write",
    "cache_root",
    "resolve_inside",
    "sha256_file",
    "sha256_file_cached",
    "write_text_atomic",
]


def cache_root() -> Path:
    """``$DEEPEXEMPLAR_CACHE``, else ``$XDG_CACHE_HOME/deepexemplar``, else ``~/.cache/deepexemplar``.

    Example:
        >>> cache_root().name in ("deepexemplar",) or "DEEPEXEMPLAR_CACHE" in os.environ
        True
    """
    override = os.environ.get("DEEPEXEMPLAR_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "deepexemplar"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` when the block succeeds.

    For writers that take a file name (safetensors, PyAV, ``torch.save``). On any exception,
    including ``KeyboardInterrupt``, the temporary file is removed and ``path`` is untouched.

    Args:
        path: the destination; its folder must exist.
        mode: permission bits of the result; ``None`` keeps those of the file it replaces,
            else ``0o644``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / "a.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
        ('done', ['a.txt'])
    """
    path = Path(path)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``path``; it replaces ``path`` when the block
    succeeds (a folder of several files, e.g. one target's intermediates).

    On any exception, including ``KeyboardInterrupt``, the temporary folder is removed and
    ``path`` is untouched, so a reader never finds half of the files. A folder already at
    ``path`` is removed just before the new one takes its name.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_folder(folder / "out") as tmp:
        ...     _ = (tmp / "a.txt").write_text("done")
        >>> sorted(p.name for p in folder.iterdir()), (folder / "out" / "a.txt").read_text()
        (['out'], 'done')
    """
    path = Path(path)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(temporary, 0o755)  # as a folder made by mkdir (mkdtemp's is 0o700)
        yield temporary
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Run ``write`` on a binary file object and publish it at ``path`` atomically (fsynced)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically, creating its folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class PathOutsideError(ValueError):
    """A path read from a file (an index entry, a name) that leads outside its root folder."""


def file_in_the_way(folder: str | os.PathLike[str]) -> Path | None:
    """The existing file (not a folder) that ``folder`` is, or lies under, if any: an output
    folder that cannot be created, named before any work.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "a.txt").write_text("x")
        >>> file_in_the_way(root / "a.txt" / "out") == root / "a.txt", file_in_the_way(root / "b")
        (True, None)
    """
    path = Path(folder)
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def resolve_inside(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """``root / relative`` with every symbolic link followed, when it stays inside ``root``.

    The one check for paths that come from a file someone else could have written (index
    manifests, index names from a workflow): ``..`` parts, absolute paths and links that lead
    out of ``root`` are refused, so such a file can never make the project open ``/etc/passwd``.

    Args:
        root: the folder the path must stay in (itself resolved, so it may be a link).
        relative: the path as stored, relative to ``root``.

    Returns:
        The resolved absolute path.

    Raises:
        PathOutsideError: the resolved path is not inside the resolved ``root``.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> resolve_inside(root, "a/b.png") == root.resolve() / "a" / "b.png"
        True
        >>> try:
        ...     resolve_inside(root, "../x.png")
        ... except PathOutsideError as err:
        ...     print(err)
        '../x.png' leads outside ...
    """
    base = Path(root).resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise PathOutsideError(f"{str(relative)!r} leads outside {base} (to {path})")
    return path


#: Most entries kept in ``<cache root>/sha256.json`` (the newest; about 200 bytes each).
SHA256_CACHE_ENTRIES = 256


def sha256_file_cached(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file`, remembered in ``<cache root>/sha256.json`` by path, size and mtime.

    Weights files are hashed on every load to check them against their manifest; this makes
    that cost once per file version (a 550 MB VGG takes about a second). A file rewritten in
    place gets a new mtime and is hashed again. The cache is best effort: an unreadable or
    unwritable cache only means hashing again.
    """
    path = Path(path).resolve()
    status = path.stat()
    stamp = [status.st_size, status.st_mtime_ns]
    store = cache_root() / "sha256.json"
    try:
        entries = json.loads(store.read_text(encoding="utf-8"))
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    entry = entries.pop(str(path), None)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and entry.get("sha256"):
        return str(entry["sha256"])
    digest = sha256_file(path)
    entries[str(path)] = {"stamp": stamp, "sha256": digest}  # last: the newest
    with contextlib.suppress(OSError):
        write_text_atomic(store, json.dumps(dict(list(entries.items())[-SHA256_CACHE_ENTRIES:])))
    return digest
