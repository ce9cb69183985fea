"""A tqdm progress bar usable as the ``progress(done, total)`` callback of the steps."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class _Bar:
    def __init__(self, desc: str, unit: str, disable: bool) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm(desc=desc, unit=unit, disable=disable, dynamic_ncols=True,
                          file=sys.stderr, mininterval=2.0)

    def __call__(self, done: int, total: int, **postfix: float) -> None:
        if self._tqdm.total != total:
            self._tqdm.total = total
        if postfix:
            self._tqdm.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._tqdm.update(done - self._tqdm.n)

    def close(self) -> None:
        self._tqdm.close()


@contextlib.contextmanager
def progress_bar(desc: str, unit: str = "it", disable: bool = False) -> Iterator[_Bar]:
    """Yield a callable ``bar(done, total, **postfix)`` that draws a tqdm bar on stderr."""
    bar = _Bar(desc, unit, disable)
    try:
        yield bar
    finally:
        bar.close()
