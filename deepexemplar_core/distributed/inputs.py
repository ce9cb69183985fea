"""A batch job's INPUT: a folder tree, or a list of paths, on a local or a remote file system.

INPUT is a folder (searched recursively for images and video clips; hidden files and the output
folder are left out) or a list file: ``.txt``/``.lst`` (one path per line, ``#`` comments),
``.csv`` (a ``path`` column) or ``.parquet`` (a ``path`` column). Paths in a list are relative to
the list's folder unless absolute or URIs. ``s3://``, ``gs://``, ``hdfs://`` ... URIs are read
through :mod:`pyarrow.fs` with the credentials of the environment (as Ray Data reads them).

OUTPUT mirrors the tree: ``INPUT/a/b/x.jpg`` -> ``OUTPUT/a/b/x_colorized.png`` (for a list, the
tree below the entries' common folder), a clip ``c.avi`` -> ``c_colorized.mp4``. Names follow
``deepexemplar colorize`` (:func:`~deepexemplar_core.cli.colorize.colorized_name`: ``x_1_...``
when two files of a folder share a stem).
"""

from __future__ import annotations

import contextlib
import csv
import io
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..image_io import IMAGE_SUFFIXES
from ..video import VIDEO_FORMATS

__all__ = ["CLIP_SUFFIXES", "LIST_SUFFIXES", "Task", "list_tasks", "local_copy"]

#: Video files colorized as clips (one clip per task; PyAV reads them).
CLIP_SUFFIXES = (*VIDEO_FORMATS, ".avi", ".webm", ".mpg", ".mpeg")
#: Suffixes of list files.
LIST_SUFFIXES = (".txt", ".lst", ".csv", ".parquet")


@dataclass(frozen=True, slots=True)
class Task:
    """One file of the job.

    Attributes:
        input: an absolute local path or a URI (what the ledger records).
        output: the local output file.
        kind: ``"image"`` or ``"clip"``.
    """

    input: str
    output: str
    kind: str


def _is_uri(source: str) -> bool:
    return "://" in source


def _filesystem(source: str):
    """``(pyarrow file system, path on it, URI prefix)`` of a local path or a URI."""
    from pyarrow import fs

    if _is_uri(source):
        filesystem, path = fs.FileSystem.from_uri(source)
        return filesystem, path, source.split("://", 1)[0] + "://"
    return fs.LocalFileSystem(), str(Path(source).expanduser().resolve()), ""


def list_tasks(source: str, output: str | Path) -> list[Task]:
    """Every file of INPUT with its output path, sorted by input.

    Args:
        source: a folder or a list file, a local path or a URI.
        output: the local output folder.

    Returns:
        The tasks (empty when INPUT holds no image or clip).

    Raises:
        ValueError: INPUT does not exist, is neither a folder nor a list, a list without a
            ``path`` column, or an output that would replace an input.
        OSError: INPUT cannot be read.
    """
    from pyarrow import fs

    filesystem, path, prefix = _filesystem(str(source))
    output = Path(output).expanduser().resolve()
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.Directory:
        entries = _walk(filesystem, path, None if prefix else output)
        root = path
    elif info.type == fs.FileType.File and posixpath.splitext(path)[1].lower() in LIST_SUFFIXES:
        entries = _read_list(filesystem, path)
        root = posixpath.commonpath([posixpath.dirname(e.split("://", 1)[-1]) for e in entries]) \
            if entries else path
    elif info.type == fs.FileType.NotFound:
        raise ValueError(f"INPUT {source}: no such file or folder")
    else:
        raise ValueError(f"INPUT {source}: expected a folder or a list of paths "
                         f"({', '.join(LIST_SUFFIXES)})")
    full = [e if _is_uri(e) else prefix + e for e in entries]
    return _plan(full, [e.split("://", 1)[-1] for e in entries], root, output)


def _walk(filesystem, path: str, skip: Path | None) -> list[str]:
    """Image and clip files below ``path`` (hidden ones and those below ``skip`` left out)."""
    from pyarrow import fs

    wanted = {suffix[1:] for suffix in (*IMAGE_SUFFIXES, *CLIP_SUFFIXES)}
    found = []
    for info in filesystem.get_file_info(fs.FileSelector(path, recursive=True)):
        if info.type != fs.FileType.File or info.extension.lower() not in wanted:
            continue
        relative = posixpath.relpath(info.path, path)
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        if skip is not None and Path(info.path).is_relative_to(skip):
            continue
        found.append(info.path)
    return found


def _read_list(filesystem, path: str) -> list[str]:
    """The entries of a list file, made absolute (relative ones against the list's folder)."""
    suffix = posixpath.splitext(path)[1].lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, filesystem=filesystem)
        if "path" not in table.column_names:
            raise ValueError(f"INPUT {path}: expected a 'path' column, got {table.column_names}")
        names = [str(v) for v in table.column("path").to_pylist() if v]
    else:
        with filesystem.open_input_stream(path) as f:
            text = f.read().decode("utf-8-sig")
        if suffix == ".csv":
            reader = csv.DictReader(io.StringIO(text))
            if "path" not in (reader.fieldnames or ()):
                raise ValueError(f"INPUT {path}: expected a 'path' column, got {reader.fieldnames}")
            names = [row["path"].strip() for row in reader if (row["path"] or "").strip()]
        else:
            names = [line.strip() for line in text.splitlines()
                     if line.strip() and not line.lstrip().startswith("#")]
    folder = posixpath.dirname(path)
    return sorted({n if _is_uri(n) or posixpath.isabs(n) else posixpath.normpath(
        posixpath.join(folder, n)) for n in names})


def _plan(full: list[str], paths: list[str], root: str, output: Path) -> list[Task]:
    """Tasks with mirrored output paths, named per folder as ``colorize`` names them.

    String operations only (a million paths take seconds): no file system call per path.
    """
    from ..cli.colorize import colorized_name

    seen: dict[tuple[str, str], int] = {}
    tasks = []
    for source, path in sorted(zip(full, paths)):  # a folder's files in order, as plan_outputs
        relative = posixpath.relpath(path, root)
        if relative.startswith(".."):
            raise ValueError(f"INPUT: {source} lies outside {root}")
        folder, name = posixpath.split(relative)
        stem, suffix = posixpath.splitext(name)
        count = seen.get((folder, stem), 0)
        seen[(folder, stem)] = count + 1
        target = posixpath.join(str(output), folder, colorized_name(stem, count))
        if suffix.lower() in CLIP_SUFFIXES:
            clip = suffix.lower() if suffix.lower() in VIDEO_FORMATS else ".mp4"
            tasks.append(Task(source, target[: -len(".png")] + clip, "clip"))
        else:
            tasks.append(Task(source, target, "image"))
    clash = {t.input for t in tasks} & {t.output for t in tasks}
    if clash:
        raise ValueError(f"-o {output}: would replace the input {min(clash)}; choose another "
                         "output so that the originals are kept")
    return tasks


@contextlib.contextmanager
def local_copy(source: str) -> Iterator[Path]:
    """A local path of ``source``: the file itself, or a temporary copy of a remote one."""
    if not _is_uri(source):
        yield Path(source)
        return
    filesystem, path, _ = _filesystem(source)
    with tempfile.TemporaryDirectory(prefix="deepexemplar-") as folder:
        local = Path(folder) / posixpath.basename(path)
        with filesystem.open_input_stream(path) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield local
