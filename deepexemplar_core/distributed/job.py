"""The driver of a ``deepexemplar batch`` job.

It lists INPUT (:func:`~deepexemplar_core.distributed.inputs.list_tasks`), reads the ledger in
OUTPUT (:class:`~deepexemplar_core.distributed.ledger.Ledger`), leaves out what is done, and
streams the rest through a Ray Data actor pool of
:class:`~deepexemplar_core.distributed.colorizer.FileColorizer` (each actor loads the models
and prepares the reference once), appending every file's outcome to the ledger as it comes
back. Without an address Ray starts in-process on this machine; ``address="auto"`` or
``"ray://head:10001"`` joins a cluster.

A killed driver loses nothing that was written: on the next run the files recorded done are
left out, and outputs written but not yet recorded are found in place (``exists``) and kept.
One job at a time may use an OUTPUT folder (a lock file says so).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .inputs import Task, list_tasks
from .ledger import DONE, LEDGER_NAME, Ledger

__all__ = ["INSTALL_HINT", "BatchJob", "JobConfig", "RayMissingError", "import_ray"]

logger = logging.getLogger(__name__)

#: How to install what ``deepexemplar batch`` needs.
INSTALL_HINT = "pip install 'comfyui-deep-exemplar[distributed]'"
#: Name of the lock file that keeps a second job out of an OUTPUT folder.
LOCK_NAME = ".deepexemplar-batch.lock"
#: Most files in one Ray block (a block goes to one actor; a dead actor's block is redone).
MAX_BLOCK_ROWS = 256
#: The options of ``deepexemplar colorize`` that decide the output pixels (the ledger's header).
_PIXEL_OPTIONS = ("family", "colorizer", "size", "upsample", "strength")


class RayMissingError(ImportError):
    """Ray Data is not installed (the message says how to install it)."""


def import_ray():
    """Import and return :mod:`ray` (with :mod:`ray.data`), or say how to install it.

    Raises:
        RayMissingError: Ray Data is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401 - the data library is a separate extra of Ray
    except ImportError as err:
        raise RayMissingError(f"deepexemplar batch needs Ray Data ({err}); install it with: "
                              f"{INSTALL_HINT}") from err
    return ray


@dataclass(frozen=True)
class JobConfig:
    """What a batch job does and where.

    Attributes:
        input: a folder or a list of paths (local path or URI).
        output: the local output folder (on a cluster: a folder every node mounts).
        reference: the colour reference(s) of every file (paths every node can read): one
            path, or several (each pixel takes the reference that matches it best), or
        reference_index: an index folder; each image gets its top recommendation.
        options: model options (:func:`~deepexemplar_core.distributed.colorizer.model_options`).
        address: ``None`` (Ray in-process on this machine), ``"auto"`` or ``"ray://host:port"``.
        workers: actors (each loads the models once).
        gpus_per_worker: GPUs per actor (fractions share a GPU); 0 runs on CPUs.
        cpus_per_worker: CPUs per actor (and its CPU threads); ``None`` = the cluster's CPUs
            divided among the workers without GPUs, 1 with GPUs.
        batch_size: files per actor call.
        retry_failed: process again the files recorded as failed.
    """

    input: str
    output: Path
    reference: str | tuple[str, ...] | None = None
    reference_index: str | None = None
    options: dict = field(default_factory=dict)
    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float | None = None
    batch_size: int = 4
    retry_failed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.reference, (str, type(None))):  # several: a tuple (one: a str)
            refs = tuple(str(r) for r in self.reference)
            object.__setattr__(self, "reference", refs[0] if len(refs) == 1 else refs or None)
        if (self.reference is None) == (self.reference_index is None):
            raise ValueError("give a reference (-r) or a reference index (--reference-index)")
        for name, value, low in (("workers", self.workers, 1), ("batch_size", self.batch_size, 1),
                                 ("gpus_per_worker", self.gpus_per_worker, 0)):
            if value < low:
                raise ValueError(f"{name}: expected >= {low}, got {value}")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker: expected > 0, got {self.cpus_per_worker}")

    def settings(self) -> dict:
        """What decides the outputs' pixels; a resumed job must keep it (the ledger checks)."""
        from .colorizer import model_options

        options = model_options(**self.options)
        reference = list(self.reference) if isinstance(self.reference, tuple) else self.reference
        return {"reference": reference, "reference_index": self.reference_index,
                **{name: getattr(options, name) for name in _PIXEL_OPTIONS}}


@dataclass
class JobSummary:
    """What a job found and did.

    Attributes:
        files: files in INPUT.
        done_before: recorded done by an earlier run, left out.
        written: colorized and written by this run.
        existing: found complete in OUTPUT (written by a killed run), kept.
        failed: this run's failures as ``{"input", "status", "error"}``.
        failed_before: failures recorded by earlier runs and not retried.
        pending: files this run had to process.
        seconds: wall time of the processing.
        ledger: the ledger file.
    """

    files: int = 0
    done_before: int = 0
    written: int = 0
    existing: int = 0
    failed: list[dict] = field(default_factory=list)
    failed_before: int = 0
    pending: int = 0
    seconds: float = 0.0
    ledger: str = ""

    @property
    def processed(self) -> int:
        """Files this run finished (done or failed)."""
        return self.written + self.existing + len(self.failed)

    @property
    def not_reached(self) -> int:
        """Files this run had to process but did not (it was stopped)."""
        return self.pending - self.processed

    def as_dict(self) -> dict:
        rate = self.processed / self.seconds if self.seconds > 0 else None
        return {**asdict(self), "not_reached": self.not_reached,
                "files_per_second": round(rate, 3) if rate else None}


class BatchJob:
    """One run of a batch job; :attr:`summary` is up to date even when the run is stopped.

    Args:
        config: the job.
    """

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        self.summary = JobSummary()

    def run(self, progress: Callable[[JobSummary], None] | None = None) -> JobSummary:
        """List, skip what is done, colorize the rest; ``progress`` is called per result block.

        Raises:
            ValueError: a bad INPUT, a ledger of another job, OUTPUT in use by another job.
            OSError: OUTPUT cannot be created or written.
            RayMissingError: Ray Data is not installed.
            Exception: the workers could not start (a missing weights file, a bad reference:
                the cause, as Ray reports it; see :func:`root_cause`).
        """
        config, summary = self.config, self.summary
        tasks = list_tasks(config.input, config.output)
        if not tasks:
            raise ValueError(f"INPUT {config.input}: holds no image or video files")
        config.output.mkdir(parents=True, exist_ok=True)
        lock = _lock(config.output)
        try:
            with Ledger.open(config.output / LEDGER_NAME, config.settings()) as ledger:
                summary.files, summary.ledger = len(tasks), str(ledger.path)
                summary.done_before = sum(ledger.status.get(t.input) in DONE for t in tasks)
                pending = [t for t in tasks if ledger.needs(t.input, config.retry_failed)]
                summary.failed_before = len(tasks) - summary.done_before - len(pending)
                summary.pending = len(pending)
                if ledger.status:
                    _remove_temporaries(config.output)
                if pending:
                    self._stream(pending, ledger, progress)
                    _remove_temporaries(config.output)  # of workers killed during this run
        finally:
            lock.close()
        return summary

    def _stream(self, pending: list[Task], ledger: Ledger,
                progress: Callable[[JobSummary], None] | None) -> None:
        ray = import_ray()
        config, summary = self.config, self.summary
        started_here = not ray.is_initialized()
        if started_here:
            extra = {} if config.address else {"include_dashboard": False}
            ray.init(address=config.address, logging_level=logging.WARNING, **extra)
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        try:
            cpus, gpus = _resources(ray, config)
            _check_setup(ray, config, cpus, gpus)
            results = _dataset(ray, pending, config, cpus, gpus)
            start = time.perf_counter()
            if progress is not None:
                progress(summary)
            for block in results.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows = block.to_pylist()
                ledger.append(rows)
                for row in rows:
                    if row["status"] == "ok":
                        summary.written += 1
                    elif row["status"] == "exists":
                        summary.existing += 1
                    else:
                        summary.failed.append({k: row[k] for k in ("input", "status", "error")})
                summary.seconds = time.perf_counter() - start
                if progress is not None:
                    progress(summary)
        finally:
            if started_here:
                ray.shutdown()


def _resources(ray, config: JobConfig) -> tuple[float, float]:
    """``(CPUs, GPUs)`` per worker."""
    resources = ray.cluster_resources()
    gpus = config.gpus_per_worker
    if gpus and config.address is None and resources.get("GPU", 0) < gpus:
        raise ValueError(f"--gpus-per-worker {gpus}: this machine has no GPU that Ray can use "
                         f"(found {resources.get('GPU', 0)}); use 0 to run on CPUs")
    cpus = config.cpus_per_worker or (
        1 if gpus else max(1, int(resources.get("CPU", 1)) // config.workers))
    return cpus, gpus


def _actor_kwargs(config: JobConfig) -> dict:
    return {"options": dict(config.options), "reference": config.reference,
            "reference_index": config.reference_index}


def _check_setup(ray, config: JobConfig, cpus: float, gpus: float) -> None:
    """Load the models and prepare the reference once in a Ray task, as each worker will.

    An actor whose start fails reaches the driver as a bare ``ActorDiedError``; a task's error
    keeps its type (missing weights: exit 3, a bad reference: exit 4) and its message.
    """
    from .colorizer import check_setup

    task = ray.remote(check_setup).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    ray.get(task.remote(**_actor_kwargs(config)))


def _dataset(ray, pending: list[Task], config: JobConfig, cpus: float, gpus: float):
    """The lazy dataset of ledger rows: the pending tasks mapped by a FileColorizer pool."""
    from .colorizer import FileColorizer

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI shows files/s and the ETA
    context.print_on_execution_start = False
    context.max_consecutive_actor_init_deaths = config.workers  # e.g. a node without weights
    rows = max(config.batch_size,
               min(MAX_BLOCK_ROWS, math.ceil(len(pending) / (4 * config.workers))))
    items = [{"input": t.input, "output": t.output, "kind": t.kind} for t in pending]
    kwargs = {**_actor_kwargs(config), "threads": max(1, int(cpus))}
    return ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / rows)).map_batches(
        FileColorizer, fn_constructor_kwargs=kwargs, concurrency=config.workers, num_cpus=cpus,
        num_gpus=gpus, batch_size=config.batch_size, batch_format="numpy")


def _lock(output: Path):
    """Hold the OUTPUT folder's lock (released when the process ends, even when killed)."""
    import fcntl

    handle = open(output / LOCK_NAME, "w")  # noqa: SIM115 - held for the job's duration
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        handle.close()
        raise ValueError(f"-o {output}: another deepexemplar batch job is using this folder; "
                         "wait for it or choose another -o") from err
    return handle


def _remove_temporaries(output: Path) -> None:
    """Remove the temporary files and folders of writes cut short by a killed worker or run
    (``.<name>.<id>.tmp``, see :func:`~deepexemplar_core.files.atomic_path` and
    :func:`~deepexemplar_core.files.atomic_folder`); finished outputs are never touched. Called
    under the job's lock, when no worker of it writes."""
    for folder, dirs, names in os.walk(output):
        for name in [d for d in dirs if _is_temporary(d)]:
            dirs.remove(name)
            shutil.rmtree(Path(folder, name), ignore_errors=True)
            logger.info("removed %s (a write cut short by a killed run)", Path(folder, name))
        for name in filter(_is_temporary, names):
            Path(folder, name).unlink(missing_ok=True)
            logger.info("removed %s (a write cut short by a killed run)", Path(folder, name))


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def root_cause(error: BaseException) -> BaseException:
    """The workers' own error inside a Ray error (``RayTaskError.cause``), else ``error``."""
    while isinstance(getattr(error, "cause", None), BaseException):
        error = error.cause
    return error
