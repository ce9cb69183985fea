"""A film's references over time: a keyframe schedule, shots, and the clip streamed per segment.

A clip is cut into **segments**, runs of frames coloured by the same references: a keyframe
schedule (``"0=a.png,1200=b.png"``: from frame 1200 on, ``b.png``; the same frame twice gives a
set) starts a segment at each of its frames, and with a :class:`~deepexemplar_core.motion.
ShotDetector` every shot (after a scene cut) starts one and picks its own references.
:func:`colorize_segments` streams the frames through one
:func:`~deepexemplar_core.pipeline.colorize_iter` call per segment: the segment's references are
prepared once (kept when the next segment wants the same), matching restarts where they change,
and only the current references are held, so memory does not depend on the clip's length.

The command line (``deepexemplar video --keyframes``, where a reference is a file) and the
ComfyUI node (``ExemplarColorize``'s ``keyframes``, where it is a position in the reference
batch) share the parsing, the messages and the segments; what a reference *is* stays theirs.

Example:
    >>> parse_keyframes("0=a.png, 4=b.png, 4=c.png, 99=d.png", 10)
    ([(0, ['a.png']), (4, ['b.png', 'c.png'])], ["keyframes: frame 99 is past the clip's end \
(it has 10 frames); d.png is not used"])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .motion import MotionPrior, ShotDetector
from .pipeline import PROGRESS_UNITS, colorize_iter

__all__ = ["ReferencePlan", "ScheduleError", "Segment", "colorize_segments", "parse_keyframes"]


class ScheduleError(ValueError):
    """A keyframe schedule that cannot be used (malformed, out of order, or leaving frames
    without a reference); the message names the option and the fix."""


def parse_keyframes(text: str, frame_count: int, *, name: str = "keyframes",
                    example: str = '"0=a.png,1200=b.png"'
                    ) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """``"0=a,1200=b"`` -> ``[(0, ["a"]), (1200, ["b"])]``; entries of the same frame form a set.

    Args:
        text: comma-separated ``FRAME=REFERENCE`` entries, frames 0-based and in order (what a
            reference is, a file or a position in a batch, is the caller's).
        frame_count: frames in the clip; entries at or past it are dropped.
        name: the option as the user wrote it (``"--keyframes"``, ``"'keyframes'"``), for messages.
        example: a well-formed schedule, for the message about a malformed one.

    Returns:
        ``(schedule, warnings)``: the entries within the clip, and one sentence per dropped entry
        (the caller shows them; the rest of the schedule is still used).

    Raises:
        ScheduleError: a malformed entry, frames out of order, or no entry within the clip.
    """
    schedule: list[tuple[int, list[str]]] = []
    warnings: list[str] = []
    last = -1
    entries = [e for e in (e.strip() for e in text.split(",")) if e]
    if not entries:
        raise ScheduleError(f"{name}: is empty, so there is no entry within the clip; give "
                            f"FRAME=REFERENCE entries such as {example}")
    for entry in entries:
        frame, sep, ref = (part.strip() for part in entry.partition("="))
        if frame.startswith("-") and frame[1:].isdecimal():
            raise ScheduleError(f"{name}: expected FRAME=REFERENCE entries with FRAME >= 0 "
                                f"(frames count from 0), got {entry!r}")
        if not sep or not (frame.isascii() and frame.isdecimal()) or not ref:
            raise ScheduleError(f"{name}: expected FRAME=REFERENCE entries such as {example}, "
                                f"got {entry!r}")
        number = int(frame)
        if number < last:
            raise ScheduleError(f"{name}: frame {number} comes after frame {last}; list the "
                                "entries in frame order")
        last = number
        if number >= frame_count:
            warnings.append(f"{name}: frame {number} is past the clip's end (it has "
                            f"{frame_count} frames); {ref} is not used")
        elif schedule and schedule[-1][0] == number:
            schedule[-1][1].append(ref)
        else:
            schedule.append((number, [ref]))
    if not schedule:
        raise ScheduleError(f"{name}: no entry within the clip (it has {frame_count} frames)")
    return schedule, warnings


class ReferencePlan:
    """Which references colour which frames: fixed, a keyframe schedule, or picked per shot.

    Call :meth:`starts` on every frame in order; :meth:`references` gives the references of the
    segment a frame starts. References are whatever the caller uses (file paths, positions in a
    batch); they are compared with ``==`` to keep the prepared ones when they do not change.

    Args:
        fixed: the references of the frames no schedule entry covers (may be empty when the
            schedule starts at frame 0 or ``pick`` chooses).
        schedule: ``(frame, references)`` entries in frame order (:func:`parse_keyframes`).
        shots: with a detector, every shot (the first frame and each frame after a scene cut)
            starts a segment.
        pick: with ``shots``, chooses a shot's references from its first frame
            (``(C, H, W)`` in [0, 1]), e.g. the top recommendations of an index.
        name: the option, for messages; hint: what else fixes a schedule not starting at 0.

    Raises:
        ScheduleError: the schedule does not start at frame 0 and there is no ``fixed``.

    Example:
        >>> plan = ReferencePlan(schedule=[(0, [1]), (3, [2, 3])])
        >>> frame = torch.zeros(1, 8, 8)
        >>> [(n, plan.references(n, frame)) for n in range(5) if plan.starts(n, frame)]
        [(0, [1]), (3, [2, 3])]
    """

    def __init__(self, fixed: Sequence[Hashable] = (),
                 schedule: Sequence[tuple[int, Sequence[Hashable]]] = (), *,
                 shots: ShotDetector | None = None,
                 pick: Callable[[torch.Tensor], list] | None = None,
                 name: str = "keyframes", hint: str = "") -> None:
        self.fixed = list(fixed)
        self.schedule = {frame: list(refs) for frame, refs in schedule}
        if self.schedule and 0 not in self.schedule:
            if not self.fixed:
                raise ScheduleError(f"{name}: frames 0..{min(self.schedule) - 1} have no "
                                    f"reference; start the schedule at frame 0{hint}")
            self.schedule[0] = self.fixed
        if pick is not None and shots is None:
            raise ValueError("pick: needs a ShotDetector (shots) to know where shots start")
        self.shots, self.pick = shots, pick

    def starts(self, number: int, frame: torch.Tensor) -> bool:
        """Whether frame ``number`` (``(C, H, W)`` in [0, 1]) starts a segment."""
        if self.shots is not None:
            from .color import rgb_to_l

            cut = self.shots(rgb_to_l(frame.unsqueeze(0)))
            return cut or number in self.schedule
        return number == 0 or number in self.schedule

    def references(self, number: int, frame: torch.Tensor) -> list:
        """The references of the segment that frame ``number`` starts."""
        if self.pick is not None:
            return self.pick(frame)
        if not self.schedule:
            return self.fixed
        return self.schedule[max(f for f in self.schedule if f <= number)]


@dataclass(frozen=True)
class Segment:
    """A run of frames coloured by the same references.

    Attributes:
        first_frame: its first frame (0-based, in the clip).
        references: its references as ``prepare`` kept them (a gray one may be left out).
        prepared: what ``prepare`` made of them (a prepared reference or set).
        motion: the segment's frame-to-frame state (``motion.cuts``: scene cuts inside it), or
            ``None`` without ``ColorizeConfig.motion``.
    """

    first_frame: int
    references: list
    prepared: Any
    motion: MotionPrior | None


def colorize_segments(
    frames: Iterable[torch.Tensor],
    plan: ReferencePlan,
    models,
    config,
    prepare: Callable[[list], tuple[Any, list]],
    *,
    chunk_size: int | None = 8,
    progress: Callable[[int, int], None] | None = None,
    total: int = 0,
    keep_intermediates: bool | Callable[[Segment], bool] = False,
    output_device: torch.device | str | None = None,
) -> Iterator[tuple[Segment, Any]]:
    """Colorize a clip's frames segment by segment, each through one streaming core call.

    Frames are read from ``frames`` only as the core asks for them (one frame of look-ahead
    decides where a segment ends), so memory is one chunk whatever the clip's length.

    Args:
        frames: ``(C, H, W)`` frames in [0, 1] in playing order (a generator is fine).
        plan: where segments start and their references.
        models, config: as :func:`~deepexemplar_core.pipeline.colorize_iter` (``config.motion``:
            each frame matched from the previous one; restarted at every segment).
        prepare: references -> ``(prepared, kept references)``, e.g.
            :func:`~deepexemplar_core.pipeline.prepare_reference` for one and
            :func:`~deepexemplar_core.pipeline.prepare_references` for several; called once per
            change of references.
        chunk_size, output_device: as ``colorize_iter``.
        keep_intermediates: as ``colorize_iter``, or a function of the segment (e.g. only where
            it has several references).
        progress: ``(done, total)`` in units of ``PROGRESS_UNITS`` per frame of the clip.
        total: the clip's frame count for ``progress`` (0 if unknown).

    Yields:
        ``(segment, ColorizedImage)`` per frame in order; the frame's index in the clip is
        ``segment.first_frame + result.index``.
    """
    keep = keep_intermediates if callable(keep_intermediates) else (
        lambda _: bool(keep_intermediates))
    source = iter(frames)
    head = next(source, None)
    if head is not None:
        plan.starts(0, head)
    number, last, prepared, kept = 0, None, None, []
    while head is not None:
        first, wanted = number, plan.references(number, head)
        if wanted != last:  # a segment that wants the same references keeps them prepared
            prepared = None
            prepared, kept = prepare(wanted)
            last = wanted
        segment = Segment(first, kept, prepared, MotionPrior() if config.motion else None)

        def run(frame: torch.Tensor) -> Iterator[torch.Tensor]:
            nonlocal head, number
            head = None
            while frame is not None:
                number += 1
                yield frame
                frame = next(source, None)
                if frame is not None and plan.starts(number, frame):
                    head = frame
                    return

        relay = None if progress is None else (
            lambda done, _, offset=first * PROGRESS_UNITS: progress(offset + done,
                                                                    total * PROGRESS_UNITS))
        for done in colorize_iter(run(head), prepared, models, config, chunk_size=chunk_size,
                                  progress=relay, keep_intermediates=keep(segment),
                                  output_device=output_device, motion=segment.motion):
            yield segment, done
