"""Callable classes for Ray Data's ``map_batches``: models loaded once per actor, no file lost.

Ray is not imported here: these are plain classes that Ray instantiates once per actor
(``fn_constructor_kwargs``) and calls once per batch. Each loads the models (on the actor's GPU
share when it has one: ``device="auto"``) and prepares the reference(s) once, then colorizes every
target of every batch through the core's streaming call
(:func:`~deepexemplar_core.pipeline.colorize_iter`), exactly as ``deepexemplar colorize`` does,
so the pixels are the same. A target that fails is recorded with its reason and never takes the
other targets of its batch down (Ray's own error tolerance would drop the whole block).

* :class:`DatasetColorizer`: rows of images (``ray.data.read_images``) -> the same rows with the
  images colorized; :func:`colorize_dataset` wraps the ``map_batches`` call::

      import ray
      from deepexemplar_core.distributed import DatasetColorizer, colorize_dataset

      ds = ray.data.read_images("s3://archive/scans/", include_paths=True, mode="L")
      out = colorize_dataset(ds, "ref.jpg", concurrency=4, num_gpus=0.5, size=256)
      # or, by hand:
      out = ds.map_batches(DatasetColorizer, fn_constructor_kwargs={"reference": "ref.jpg"},
                           concurrency=4, num_gpus=0.5, batch_size=8, batch_format="numpy")
      out.filter(lambda row: not row["error"]).write_images("s3://archive/colour/", "image")

* :class:`FileColorizer`: the rows of a ``deepexemplar batch`` job (input, output, kind) ->
  its ledger rows; it writes the outputs with the ``colorize`` command's writer (metadata,
  atomic) and colorizes video clips with the ``video`` command.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .ledger import DONE, FIELDS

__all__ = ["DatasetColorizer", "FileColorizer", "check_setup", "colorize_dataset", "model_options"]

#: Prepared references an actor keeps with ``--reference-index`` (least recently used dropped).
PREPARED_CACHE = 8
#: Model options that name files.
_PATH_OPTIONS = ("weights", "backbone_weights", "colornet_weights")


def model_options(**options: object) -> argparse.Namespace:
    """The model options of ``deepexemplar colorize`` (its defaults, overridden by ``options``).

    Args:
        **options: ``family``, ``colorizer``, ``weights``, ``backbone_weights``,
            ``colornet_weights``, ``allow_download``, ``repo_id``, ``device``, ``size``,
            ``upsample``, ``strength``, ``backend`` (see ``deepexemplar colorize --help``).

    Raises:
        TypeError: an unknown option (the message lists the known ones).

    Example:
        >>> model_options(size=96).size, model_options().family
        (96, 'auto')
    """
    from ..cli.options import add_model_options

    parser = argparse.ArgumentParser(add_help=False)
    add_model_options(parser)
    args = parser.parse_args([])
    unknown = sorted(set(options) - set(vars(args)))
    if unknown:
        raise TypeError(f"unknown model option(s) {unknown}; expected some of {sorted(vars(args))}")
    for key, value in options.items():
        setattr(args, key, Path(value) if key in _PATH_OPTIONS and value is not None else value)
    return args


class _Session:
    """What an actor loads once: the models, the config and the prepared reference(s)."""

    def __init__(self, options: dict, reference: object = None,
                 reference_index: str | None = None, threads: int | None = None) -> None:
        from ..cli.options import config_from_args, load_models_from_args

        if (reference is None) == (reference_index is None):
            raise ValueError("give a reference or a reference index (exactly one)")
        if threads is not None:
            torch.set_num_threads(threads)
        self.args = model_options(**options)
        self.models = load_models_from_args(self.args)
        self.config = config_from_args(self.args)
        self.reference, self.reference_index, self.index = reference, reference_index, None
        self._prepared: OrderedDict[tuple[str, ...], tuple[object, list]] = OrderedDict()
        if reference_index is not None:
            from ..recommend import Index

            self.index = Index.load(reference_index)
            self.models.provenance["reference_index"] = str(reference_index)
        else:
            self.prepared(reference)  # a bad reference fails the actor's start, not each file

    def prepared(self, reference: object) -> tuple[object, list]:
        """The prepared reference(s) (cached) and the references kept.

        Args:
            reference: a path, several paths (prepared together as a set: a gray one among
                colour ones is left out with a warning), or an image (an array or a tensor).

        Returns:
            ``(prepared, kept)``: what the core's streaming call takes, and the paths kept (the
            image itself for an image).
        """
        from ..cli.options import prepare_one_or_set
        from ..image_io import read_image

        paths = ([Path(reference)] if isinstance(reference, (str, Path)) else
                 [Path(r) for r in reference] if isinstance(reference, (list, tuple)) else None)
        key = tuple(map(str, paths)) if paths is not None else ("image",)
        if key not in self._prepared:
            images = ([read_image(p).rgb() for p in paths] if paths is not None
                      else [_to_tensor(reference)])
            self._prepared[key] = prepare_one_or_set(self.models, images, paths or ["image"],
                                                     self.config)
            while len(self._prepared) > PREPARED_CACHE:
                self._prepared.popitem(last=False)
        self._prepared.move_to_end(key)
        return self._prepared[key]

    def references_for(self, target: Path) -> list[Path]:
        """The references of a target file: the given one(s), or the index's top recommendation."""
        if self.index is None:
            refs = self.reference
            return [Path(r) for r in ([refs] if isinstance(refs, (str, Path)) else refs)]
        from ..recommend import pick_reference

        return [pick_reference(self.reference_index, target, index=self.index)]

    def colorize(self, pixels: torch.Tensor, prepared):
        """One target through the core's streaming call, as ``deepexemplar colorize`` makes it
        (with several references, its intermediates hold the choice map for the metadata).

        Raises:
            ValueError: the core refuses the target (named ``targets[0]``).
        """
        from ..pipeline import colorize_iter
        from ..results import ReferenceSet

        return next(colorize_iter([pixels], prepared, self.models, self.config, chunk_size=1,
                                  keep_intermediates=isinstance(prepared, ReferenceSet)))


def check_setup(options: dict, reference: str | list[str] | None = None,
                reference_index: str | None = None) -> None:
    """Load the models and prepare the reference as every :class:`FileColorizer` will (run once
    as a Ray task before the pool starts: a setup error then comes back as itself).

    Raises:
        WeightsError: weights missing or corrupt.
        ImageReadError, ValueError: a bad reference or index.
    """
    _Session(options, reference, reference_index)


def _to_tensor(image: object) -> torch.Tensor:
    """``(H, W)``, ``(H, W, 1|3|4)`` uint8/uint16/float array or tensor -> ``(1|3, H, W)`` float."""
    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(array.dtype, 1.0)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image: expected (H, W) or (H, W, 1|3|4), got {array.shape}")
    pixels = torch.from_numpy(np.ascontiguousarray(array[..., :3], dtype=np.float32)) / scale
    return pixels.permute(2, 0, 1).clamp(0.0, 1.0)


class DatasetColorizer:
    """Colorize the images of a Ray Data batch (one instance per actor).

    Args:
        reference: the colour reference: a file path, or an ``(H, W, 3)`` image array.
        column: the column holding the images (``ray.data.read_images`` names it ``image``).
        threads: CPU threads of this actor (``None``: torch's default).
        **options: model options (:func:`model_options`: ``family``, ``size``, ``device`` ...).

    The call takes a ``batch_format="numpy"`` batch and returns it with ``column`` replaced by
    the colorized ``(H, W, 3)`` uint8 images and a new ``error`` column: empty when the image
    was colorized, else the reason (the row then keeps its input image unchanged).

    Example:
        >>> from deepexemplar_core.examples import EXAMPLE_REFERENCE
        >>> actor = DatasetColorizer(EXAMPLE_REFERENCE, family="lite", size=64)
        >>> gray = np.full((48, 40), 128, np.uint8)
        >>> out = actor({"image": np.stack([gray, gray]), "name": np.array(["a", "b"])})
        >>> out["image"][0].shape, out["image"][0].dtype, list(out["error"]), out["name"].tolist()
        ((48, 40, 3), dtype('uint8'), ['', ''], ['a', 'b'])
    """

    def __init__(self, reference: object, column: str = "image", threads: int | None = None,
                 **options: object) -> None:
        self.session = _Session(options, reference=reference, threads=threads)
        self.column = column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, object]:
        prepared, _ = self.session.prepared(self.session.reference)
        images, errors = [], []
        for image in batch[self.column]:
            try:
                done = self.session.colorize(_to_tensor(image), prepared)
            except Exception as err:  # noqa: BLE001 - recorded per row, the batch goes on
                images.append(image)
                errors.append(f"{type(err).__name__}: {err}")
                continue
            rgb8 = (done.image.cpu().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
            images.append(rgb8.permute(1, 2, 0).numpy())
            errors.append("")
        return {**batch, self.column: images, "error": np.array(errors, dtype=object)}


class FileColorizer:
    """Colorize the files of a ``deepexemplar batch`` job (one instance per actor).

    Args:
        options: model options (:func:`model_options`).
        reference: the reference file(s) of every target (several: each pixel takes the
            reference that matches it best, as ``colorize -r a -r b``), or
        reference_index: an index folder (``deepexemplar index``): each target gets its top
            recommendation (recorded in the output's metadata).
        threads: CPU threads of this actor (``None``: torch's default).

    The call takes a batch with the columns ``input``, ``output`` and ``kind`` (see
    :class:`~deepexemplar_core.distributed.inputs.Task`) and returns the ledger rows
    (:data:`~deepexemplar_core.distributed.ledger.FIELDS`), one per input, whatever happens to
    each. An output that already exists is never rewritten: it is recorded ``exists`` when its
    metadata names this input (an earlier run wrote it), else ``failed``.
    """

    def __init__(self, options: dict, reference: str | list[str] | None = None,
                 reference_index: str | None = None, threads: int | None = None) -> None:
        self.session = _Session(options, reference, reference_index, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [self.process(str(source), Path(str(output)), str(kind))
                for source, output, kind in zip(batch["input"], batch["output"], batch["kind"])]
        return {key: [row[key] for row in rows] for key in FIELDS}

    def process(self, source: str, output: Path, kind: str) -> dict[str, object]:
        """One file: colorize and write it, or record why not (never raises but for Ctrl-C)."""
        from ..image_io import ImageReadError

        start = time.perf_counter()
        try:
            if output.exists():
                status, error = self._existing(source, output, kind)
            else:
                output.parent.mkdir(parents=True, exist_ok=True)
                status, error = (self._clip if kind == "clip" else self._image)(source, output)
        except ImageReadError as err:
            status, error = "unreadable", str(err)
        except (ValueError, TypeError) as err:
            status, error = "invalid", str(err)
        except Exception as err:  # noqa: BLE001 - recorded in the ledger, the batch goes on
            status, error = "failed", f"{type(err).__name__}: {err}"
        digest = ""
        if status in DONE:
            from ..files import sha256_file

            digest = sha256_file(output)
        return {"input": source, "status": status, "output": str(output), "sha256": digest,
                "seconds": round(time.perf_counter() - start, 4), "error": error}

    def _existing(self, source: str, output: Path, kind: str) -> tuple[str, str]:
        """An output found in place (outputs are written atomically, so it is complete)."""
        from ..image_io import read_metadata

        if kind == "clip" or read_metadata(output).get("deepexemplar:target") == source:
            return "exists", ""
        return "failed", (f"{output} exists and was not made from this input; it is kept (move it "
                          "away to colorize this input)")

    def _image(self, source: str, output: Path) -> tuple[str, str]:
        """Read, colorize and write one image with the ``colorize`` command's writer."""
        from ..cli.colorize import _Job, _metadata, _phrase, _write
        from ..image_io import read_image
        from .inputs import local_copy

        with local_copy(source) as path:
            image = read_image(path)
            references = self.session.references_for(path)
        prepared, kept = self.session.prepared(references)
        try:
            done = self.session.colorize(image.pixels, prepared)
        except ValueError as err:  # the core refused the target (too small ...)
            return "invalid", _phrase(err, source)
        job = _Job(source, output)  # the metadata names the input as the ledger does
        meta = _metadata(self.session.models, kept, job.source, self.session.config, done, [])
        _write(job, image, done, meta, kept, False)
        return job.status, job.error

    def _clip(self, source: str, output: Path) -> tuple[str, str]:
        """One clip, frames in order, through the ``video`` command with this actor's models."""
        from ..cli import EXIT_OK, video
        from .inputs import local_copy

        if self.session.index is not None:
            raise ValueError("a video clip needs one reference (-r); --reference-index picks "
                             "references for images only")
        parser = argparse.ArgumentParser()
        video.register(parser.add_subparsers())
        with local_copy(source) as path:
            refs = [x for r in self.session.references_for(path) for x in ("-r", str(r))]
            args = parser.parse_args(["video", str(path), "-o", str(output), "--quiet", *refs])
            args.__dict__.update(vars(self.session.args), preloaded_models=self.session.models)
            said = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said):
                code = video.run(args)
        if code == EXIT_OK:
            return "ok", ""
        errors = [line for line in said.getvalue().splitlines() if line.startswith("error:")]
        return "failed", (errors[-1][len("error: "):] if errors else f"video exit code {code}")


def colorize_dataset(ds, reference: object, *, column: str = "image", concurrency: int = 1,
                     num_gpus: float = 0.0, num_cpus: float = 1.0, batch_size: int = 4,
                     **options: object):
    """Colorize the images of a ``ray.data.Dataset`` with an actor pool of :class:`DatasetColorizer`.

    Args:
        ds: a dataset with an image column (``ray.data.read_images(..., include_paths=True)``).
        reference: the colour reference (a path every worker can read, or an image array).
        column: the image column.
        concurrency: actors (each loads the models once).
        num_gpus: GPUs per actor (0.5 puts two actors on a GPU); 0 runs on CPUs.
        num_cpus: CPUs per actor (its CPU threads).
        batch_size: rows per call.
        **options: model options (:func:`model_options`).

    Returns:
        The lazy dataset of colorized rows (``column`` replaced, ``error`` added).
    """
    kwargs = {"reference": reference, "column": column, "threads": max(1, int(num_cpus)),
              **options}
    return ds.map_batches(DatasetColorizer, fn_constructor_kwargs=kwargs,
                          concurrency=concurrency, num_gpus=num_gpus, num_cpus=num_cpus,
                          batch_size=batch_size, batch_format="numpy")
