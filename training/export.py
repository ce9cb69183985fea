"""Export a training run as the project's weights layout, with a model card; optionally push it.

``python -m training.export RUN -o DIR [--overwrite] [--licence ID] [--eval-table FILE]
[--push-to-hub REPO]``

Exit codes: 0 exported (and pushed); 2 a bad run or output folder (no, a damaged or an unsafe
checkpoint; ``DIR`` already holds exported files and ``--overwrite`` is not given); 3 the push
failed (the export is complete on disk).

Writes into ``DIR``:

* ``example_net.safetensors``: the ``ExampleColorNet`` state dict (float32, the key names of the
  authors' ``example_net.pth``), the file name the core resolves for ``colornet``, so that
  ``--colornet-weights DIR/example_net.safetensors``, ``$DEEPEXEMPLAR_WEIGHTS=DIR`` and the
  ComfyUI ``models/deepexemplar`` folder all find it;
* ``example_net.manifest.json``: the core's manifest (:func:`deepexemplar_core.weights.write_manifest`)
  plus ``trained_on_backbone``, ``backbone_sha256``, ``steps``, ``data``, ``training``;
* ``README.md``: a Hugging Face model card (YAML metadata: licence, tags, library) with the run's
  settings, metrics, evaluation table (``--eval-table``) and loss plot (``loss.png``).

``--push-to-hub owner/name`` uploads the folder with ``huggingface_hub.HfApi().upload_folder``;
the token is read from ``$HF_TOKEN`` (or ``$HUGGING_FACE_HUB_TOKEN``) and never written anywhere.
The checkpoint is read without unpickling anything but tensors and plain values
(:func:`training._io.load_checkpoint`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

from ._io import atomic_write, check_output_folder, load_checkpoint, save_safetensors_atomic

__all__ = ["HubPushError", "export_run", "model_card", "push_to_hub"]

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "example_net.safetensors"
#: Every file an export writes into its folder (refused when present, unless ``overwrite``).
EXPORTED = (WEIGHTS_NAME, "example_net.manifest.json", "README.md", "loss.png")
TAGS = ("image-colorization", "exemplar-based-colorization", "deep-exemplar", "pytorch",
        "safetensors")


def _read_run(run: Path) -> tuple[dict, dict, list[dict]]:
    checkpoint = run / "checkpoint.pt"
    if not checkpoint.is_file():
        raise ValueError(f"run: {checkpoint} not found; train first (python -m training.train)")
    state = load_checkpoint(checkpoint)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    metrics_file = run / "metrics.jsonl"
    metrics = ([json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
               if metrics_file.is_file() else [])
    return state, config, [m for m in metrics if m["step"] <= state["step"]]


def _summary(metrics: list[dict], batch: int, last: int = 20) -> dict:
    """Loss means at the start and the end, and the throughput of a run's metric rows.

    ``images_per_s`` counts the optimisation steps only (batch x steps / the sum of the step
    times); ``wall_seconds`` adds the data loading and checkpoints (summed over resumed parts).
    """
    if not metrics:
        return {}
    tail = metrics[-last:]
    first = metrics[: min(last, len(metrics))]

    def mean(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    ends = [a["elapsed_s"] for a, b in zip(metrics, metrics[1:]) if b["elapsed_s"] < a["elapsed_s"]]
    wall = sum(ends) + metrics[-1]["elapsed_s"]
    return {
        "chrom_first": mean(first, "chrom"), "chrom_last": mean(tail, "chrom"),
        "perc_first": mean(first, "perc"), "perc_last": mean(tail, "perc"),
        "images_per_s": batch * len(metrics) / sum(r["step_s"] for r in metrics),
        "wall_images_per_s": batch * len(metrics) / wall,
        "train_seconds": wall,
        "averaged_over_steps": len(tail),
    }


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse to replace files of an earlier export (or the user's own ``README.md``)."""
    check_output_folder(out, "-o")
    present = [name for name in EXPORTED if (out / name).exists()]
    if present and not overwrite:
        raise ValueError(f"-o {out}: already holds {', '.join(present)}; choose a new or empty "
                         "folder, or pass --overwrite to replace them")


def export_run(run: str | Path, out: str | Path, *, licence: str = "other",
               licence_note: str = "", eval_table: str | None = None,
               overwrite: bool = False) -> Path:
    """Write the weights, manifest, loss plot and model card of ``run`` into ``out``.

    Args:
        overwrite: replace the files of :data:`EXPORTED` when ``out`` holds them already
            (other files in ``out`` are never touched).

    Returns:
        Path of the safetensors file.

    Raises:
        ValueError: ``run`` has no checkpoint, or a damaged or unsafe one
            (:class:`~training._io.CheckpointError`); ``out`` holds exported files and
            ``overwrite`` is false.
    """
    from deepexemplar_core import ExampleColorNet
    from deepexemplar_core.files import sha256_file
    from deepexemplar_core.models import FAMILY_BACKBONE
    from deepexemplar_core.weights import read_manifest, write_manifest

    run, out = Path(run), Path(out)
    _check_output(out, overwrite)
    if eval_table and not Path(eval_table).is_file():  # before any file is written
        raise ValueError(f"--eval-table: {eval_table} is not a file; write it with "
                         "python -m training.evaluate --table-out FILE, or leave the option out")
    state, config, metrics = _read_run(run)
    net = ExampleColorNet()
    net.load_state_dict(state["model"], strict=True)
    weights = save_safetensors_atomic(
        {k: v.float() if v.is_floating_point() else v for k, v in net.state_dict().items()},
        out / WEIGHTS_NAME, {"format": "pt"},
    )
    backbone = config["backbone"]
    steps = int(state["step"])
    pairs = config["pairs"]
    options = config["options"]
    notes = [
        f"Trained with training.train for {steps} steps on pairs matched by the "
        f"{backbone['family']} backbone; load it with that backbone (--family {backbone['family']}).",
        f"Perceptual loss features: {config['perceptual']['network']}.",
    ]
    if licence_note:
        notes.append(licence_note)
    extra = {
        # the backbone's name as the core's loaders know it ("lite", "gray_vgg")
        "trained_on_backbone": FAMILY_BACKBONE.get(backbone["family"], backbone["family"]),
        "backbone_sha256": backbone["weights_sha256"],
        "backbone_tensors_sha256": backbone.get("tensors_sha256", ""),
        "backbone": backbone,
        "steps": steps,
        "data": {
            "pairs": pairs["count"], "images": pairs["images"], "kinds": pairs["kinds"],
            "classes": pairs["classes"], "stored_size": pairs["stored_size"],
            "train_size": pairs["train_size"],
        },
        "training": {
            "batch": options["batch"], "lr": options["lr"], "alpha": options["alpha"],
            "lr_gamma": options["lr_gamma"], "lr_decay_epochs": options["lr_decay_epochs"],
            "perceptual": config["perceptual"], "world_size": config["world_size"],
            "device": config.get("device_name", config["device"]),
            "metrics": _summary(metrics, int(options["batch"])),
        },
    }
    write_manifest(
        weights, network="ExampleColorNet", family=backbone["family"],
        source=f"training run {run.resolve().name} (checkpoint.pt, step {steps})",
        source_sha256=sha256_file(run / "checkpoint.pt"), licence=licence, notes=notes,
        extra=extra,
    )
    manifest = read_manifest(weights)
    if (run / "loss.png").is_file():
        atomic_write(out / "loss.png", lambda tmp: shutil.copyfile(run / "loss.png", tmp))
    table = Path(eval_table).read_text(encoding="utf-8") if eval_table else ""
    card = model_card(manifest, config, table, has_plot=(out / "loss.png").is_file())
    atomic_write(out / "README.md", lambda tmp: Path(tmp).write_text(card, encoding="utf-8"))
    logger.info("exported %s (%s steps, trained on the %s backbone)", weights, steps, backbone["family"])
    return weights


def model_card(manifest: dict, config: dict, eval_table: str = "", has_plot: bool = True) -> str:
    """The Hugging Face model card (README.md with YAML metadata) of an exported run."""
    data, training = manifest["data"], manifest["training"]
    m = training["metrics"]
    family = manifest["trained_on_backbone"]
    lines = [
        "---",
        f"license: {manifest['licence']}",
        "library_name: pytorch",
        "pipeline_tag: image-to-image",
        "tags:",
        *[f"- {t}" for t in TAGS],
        f"- backbone-{family}",
        "---",
        "",
        "# ExampleColorNet (Deep Exemplar-based Colorization) trained on our matcher",
        "",
        "The colorization sub-network of He et al., *Deep Exemplar-based Colorization* (SIGGRAPH "
        "2018), trained with both branches of the paper's section 3.2 (chrominance loss on the "
        "cycled target colours T'_ab, perceptual loss on the warped reference colours R'_ab, "
        f"alpha = {training['alpha']}) on inputs computed by the `{family}` backbone of "
        "`deepexemplar_core`.",
        "",
        f"**Use it with the `{family}` backbone**: the similarity maps it learned from come from "
        f"that backbone (weights sha256 `{manifest['backbone_sha256']}`).",
        "",
        "```bash",
        f"deepexemplar colorize gray.jpg -r reference.jpg -o out.png --family {family} "
        f"--colorizer paper --colornet-weights {manifest['file']}",
        "# or: DEEPEXEMPLAR_WEIGHTS=/path/to/this/folder deepexemplar colorize ... "
        f"--family {family} --colorizer paper",
        "```",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| steps | {manifest['steps']} |",
        f"| batch (global) | {training['batch']} |",
        f"| learning rate | {training['lr']} (x{training['lr_gamma']} every "
        f"{training['lr_decay_epochs']} epochs) |",
        f"| perceptual features | {training['perceptual']['network']} |",
        f"| pairs | {data['pairs']} from {data['images']} images (" + ", ".join(f"{v} {k}" for k, v in data['kinds'].items()) + ") |",
        f"| stored / training size | {data['stored_size']} / {data['train_size']} px |",
        f"| processes | {training['world_size']} on {training['device']} |",
    ]
    if m:
        lines += [
            f"| throughput | {m['images_per_s']:.3g} images/s in the steps, "
            f"{m['wall_images_per_s']:.3g} images/s overall |",
            f"| training time | {m['train_seconds'] / 60:.1f} min |",
            f"| chrominance loss (per pixel, mean of first / last {m['averaged_over_steps']} steps) "
            f"| {m['chrom_first']:.3f} / {m['chrom_last']:.3f} |",
            f"| perceptual loss (per pixel, same) | {m['perc_first']:.3f} / {m['perc_last']:.3f} |",
        ]
    if has_plot:
        lines += ["", "![loss curves](loss.png)"]
    if eval_table:
        lines += ["", "## Evaluation (held-out photos)", "", eval_table.strip()]
    lines += [
        "",
        "## Licence",
        "",
        f"`{manifest['licence']}`, chosen by the trainer. " + " ".join(manifest.get("notes", [])[2:]),
        "",
        "Files: `example_net.safetensors` (weights) and `example_net.manifest.json` (tensor list, "
        "sha256, backbone, data summary).",
        "",
    ]
    return "\n".join(lines)


class HubPushError(RuntimeError):
    """The upload failed (network, token, repository); the exported folder is complete on disk."""


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Upload ``folder`` to the Hub model repository ``repo_id`` (created when missing).

    The token comes from ``$HF_TOKEN`` or ``$HUGGING_FACE_HUB_TOKEN`` only.

    Returns:
        The commit URL.

    Raises:
        ValueError: no token in the environment.
        HubPushError: the Hub is unreachable or refuses the upload (the message says how to
            push the folder later).
    """
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        raise ValueError("--push-to-hub: set $HF_TOKEN to a write token (it is never stored)")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 commit_message="Upload ExampleColorNet weights from training.export")
    except Exception as err:  # the HTTP client's error types vary between versions
        raise HubPushError(
            f"--push-to-hub {repo_id}: could not reach the Hub or upload to it ({type(err).__name__}: "
            f"{err}). The export is complete in {folder}; check the network and $HF_TOKEN, then "
            f"push it with `hf upload {repo_id} {folder} .`") from err
    return str(getattr(info, "commit_url", info))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export",
                                     description="Export a training run (weights, manifest, model card).")
    parser.add_argument("run", type=Path, help="run folder of python -m training.train")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--licence", "--license", dest="licence", default="other",
                        help="Hugging Face licence id chosen by the trainer (e.g. apache-2.0, mit)")
    parser.add_argument("--licence-note", default="", help="free text about the licence or the data")
    parser.add_argument("--eval-table", default=None,
                        help="markdown file from python -m training.evaluate --table-out")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO", help="owner/name on the Hub")
    parser.add_argument("--private", action="store_true", help="create the Hub repository private")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier export in the output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        weights = export_run(args.run, args.output, licence=args.licence,
                             licence_note=args.licence_note, eval_table=args.eval_table,
                             overwrite=args.overwrite)
        if args.push_to_hub:
            url = push_to_hub(args.output, args.push_to_hub, private=args.private)
            logger.info("pushed to %s", url)
    except ValueError as e:
        logger.error("%s", e)
        return 2
    except HubPushError as e:
        logger.error("%s", e)
        return 3
    print(weights)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
