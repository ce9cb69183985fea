"""``PairShards``: a map-style ``Dataset`` over the shards of :mod:`training.pairs`.

Each item is read lazily from its shard (``safetensors.safe_open`` slices: only that pair's
bytes), so a ``DataLoader`` with workers streams the shards without loading them whole, and any
sampler (``DistributedSampler`` included) can address the items.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .pairs import FORMAT, SHARD_FIX, check_shard

__all__ = ["PairShards", "item_to_lab"]

_KEYS = ("target_rgb8", "warped_rgb8", "cycled_rgb8", "err_tr", "err_rt")


def item_to_lab(rgb8: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert one stored pair to the network's quantities (CIELab as the pipeline computes it).

    Args:
        rgb8: ``target_rgb8``, ``warped_rgb8``, ``cycled_rgb8`` ``(3, S, S)`` uint8 and
            ``err_tr``, ``err_rt`` ``(5, S, S)`` uint8.

    Returns:
        ``target_l (1, S, S)`` in [0, 100], ``target_ab (2, S, S)`` (T_ab), ``warped_ab``
        (R'_ab), ``cycled_ab`` (T'_ab), ``target_rgb (3, S, S)`` float in [0, 1], and the two
        uint8 error stacks unchanged.
    """
    from deepexemplar_core import rgb_to_lab

    colours = torch.stack([rgb8[k] for k in ("target_rgb8", "warped_rgb8", "cycled_rgb8")])
    rgb = colours.float() / 255.0
    lab = rgb_to_lab(rgb)
    return {
        "target_l": lab[0, :1],
        "target_ab": lab[0, 1:],
        "warped_ab": lab[1, 1:],
        "cycled_ab": lab[2, 1:],
        "target_rgb": rgb[0],
        "err_tr": rgb8["err_tr"],
        "err_rt": rgb8["err_rt"],
    }


def _shard_path(folder: Path, name: str) -> Path:
    """A shard named by the manifest, refused unless it lies inside the pairs folder."""
    from deepexemplar_core.files import PathOutsideError, resolve_inside

    try:
        return resolve_inside(folder, name)
    except PathOutsideError as err:
        raise ValueError(f"pairs: {folder / 'manifest.json'} names a shard outside the pairs "
                         f"folder ({err}); it is not read: rerun python -m training.pairs into "
                         "a new folder") from err


class PairShards(Dataset):
    """The cached pairs of a ``training.pairs`` folder.

    Args:
        folder: the ``--out`` folder of ``training.pairs`` (``manifest.json`` + shards).
        crop: side of a square crop taken from every item (``None`` keeps the stored size). The
            crop position is a function of ``(seed, epoch, index)`` only, so it does not depend
            on the number of workers or processes; call :meth:`set_epoch` before each epoch.
        seed: seed of the crop positions.
        partial: accept an unfinished folder and use the shards finished so far (the plan is in
            a random order, so they are a fair sample of it).
        only: use exactly these shard file names (a resumed run keeps its data).

    Each item is a dict of :func:`item_to_lab` plus ``index`` (the pair index).

    Raises:
        ValueError: not a finished pairs folder, a shard named outside the folder, a damaged
            shard (every shard's header is checked here, so that training never starts on a
            truncated one), or a crop larger than the stored size.
    """

    def __init__(self, folder: str | Path, crop: int | None = None, seed: int = 0,
                 partial: bool = False, only: list[str] | None = None) -> None:
        self.folder = Path(folder)
        manifest_file = self.folder / "manifest.json"
        if not manifest_file.is_file():
            raise ValueError(f"pairs: {self.folder} has no manifest.json; run python -m training.pairs first")
        self.manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"pairs: {manifest_file} is not a {FORMAT} manifest")
        shards = self.manifest["shards"]
        if not self.manifest.get("complete"):
            if not partial:
                raise ValueError(f"pairs: {self.folder} is unfinished; rerun training.pairs to "
                                 "complete it (or train on the finished shards with --partial-pairs)")
            shards = [s for s in shards if (self.folder / s["file"]).is_file()]
            if not shards:
                raise ValueError(f"pairs: {self.folder} has no finished shard yet")
        self.size = int(self.manifest["settings"]["size"])
        if crop is not None and (crop > self.size or crop % 8 or crop < 32):
            raise ValueError(f"crop: expected a multiple of 8 in [32, {self.size}], got {crop}")
        self.crop = crop if crop != self.size else None
        self.seed = seed
        self.epoch = 0
        if only is not None:
            shards = [s for s in self.manifest["shards"] if s["file"] in set(only)]
            missing = set(only) - {s["file"] for s in shards if (self.folder / s["file"]).is_file()}
            if missing:
                raise ValueError(f"pairs: shards {sorted(missing)} are missing from {self.folder}")
        self.files = [_shard_path(self.folder, s["file"]) for s in shards]
        counts = [int(s["count"]) for s in shards]
        for file, count in zip(self.files, counts):
            try:
                check_shard(file, count, _KEYS)
            except ValueError as err:
                raise ValueError(f"{err}; {SHARD_FIX}") from err
        self.starts = np.concatenate(([0], np.cumsum(counts))).tolist()
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def set_epoch(self, epoch: int) -> None:
        """Select the crop positions of ``epoch``."""
        self.epoch = int(epoch)

    def _handle(self, shard: int):
        from safetensors import safe_open

        if shard not in self._handles:
            if len(self._handles) > 4:
                self._handles.clear()
            self._handles[shard] = safe_open(str(self.files[shard]), framework="pt")
        return self._handles[shard]

    def raw(self, index: int) -> dict[str, torch.Tensor]:
        """The stored uint8 tensors of pair ``index`` (all keys of the shard)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        shard = bisect.bisect_right(self.starts, index) - 1
        row = index - self.starts[shard]
        handle = self._handle(shard)
        return {k: handle.get_slice(k)[row : row + 1][0] for k in handle.keys()}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        stored = self.raw(int(index))
        item = item_to_lab({k: stored[k] for k in _KEYS})
        if self.crop is not None:
            gen = np.random.default_rng((self.seed, self.epoch, int(index)))
            top, left = (int(v) for v in gen.integers(0, self.size - self.crop + 1, size=2))
            item = {k: v[..., top : top + self.crop, left : left + self.crop] for k, v in item.items()}
        item["index"] = torch.tensor(int(index))
        return item

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state
