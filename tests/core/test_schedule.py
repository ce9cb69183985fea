"""A film's references over time (``deepexemplar_core.schedule``): the schedule's parsing and
mistakes, the plan's segments, and the clip streamed per segment with bounded look-ahead."""

from __future__ import annotations

import pytest
import torch

from deepexemplar_core import ColorizeConfig, load_models
from deepexemplar_core.pipeline import prepare_reference
from deepexemplar_core.schedule import (
    ReferencePlan,
    ScheduleError,
    colorize_segments,
    parse_keyframes,
)


def test_parse_keyframes_sets_order_and_the_clips_end():
    entries, dropped = parse_keyframes(" 0=a.png , 5=b.png,5=c.png,12=d.png,30=e.png", 12,
                                       name="--keyframes")
    assert entries == [(0, ["a.png"]), (5, ["b.png", "c.png"])]
    assert dropped == ["--keyframes: frame 12 is past the clip's end (it has 12 frames); d.png "
                       "is not used", "--keyframes: frame 30 is past the clip's end (it has 12 "
                       "frames); e.png is not used"]
    for text, message in (("5=a,0=b", "frame 0 comes after frame 5; list the entries in frame "
                                       "order"),
                           ("0=a,40=b,3=c", "frame 3 comes after frame 40"),
                           ("a.png", "expected FRAME=REFERENCE entries"),
                           ("-1=a", "expected FRAME=REFERENCE entries"),
                           ("0=", "expected FRAME=REFERENCE entries"),
                           ("12=a", r"no entry within the clip \(it has 12 frames\)"),
                           ("", "no entry within the clip")):
        with pytest.raises(ScheduleError, match=message):
            parse_keyframes(text, 12)


def test_a_plan_starts_segments_where_the_references_change():
    frame = torch.zeros(1, 16, 16)
    plan = ReferencePlan(["r"], [(3, ["a"]), (6, ["b", "c"])])
    starts = [n for n in range(9) if plan.starts(n, frame)]
    assert starts == [0, 3, 6]
    assert [plan.references(n, frame) for n in (0, 2, 3, 5, 6, 8)] == [
        ["r"], ["r"], ["a"], ["a"], ["b", "c"], ["b", "c"]]
    with pytest.raises(ScheduleError, match=r"frames 0\.\.2 have no reference; start the "
                                            r"schedule at frame 0 or also give -r"):
        ReferencePlan([], [(3, ["a"])], hint=" or also give -r")
    assert ReferencePlan(["r"]).references(7, frame) == ["r"]


def test_segments_stream_with_one_chunk_of_look_ahead_and_restart_per_segment():
    """Frames are read only as the core asks for them: memory does not grow with the clip."""
    models, config = load_models("lite"), ColorizeConfig(size=48)
    generator = torch.Generator().manual_seed(0)
    colours = {"red": torch.tensor([0.8, 0.2, 0.1]), "blue": torch.tensor([0.1, 0.3, 0.9])}
    refs = {name: (torch.rand(3, 48, 48, generator=generator) * 0.3 + rgb[:, None, None] * 0.7)
            for name, rgb in colours.items()}
    read, prepared_for = [], []

    def frames():
        for n in range(14):
            read.append(n)
            yield torch.rand(1, 48, 64, generator=generator)

    def prepare(names):
        prepared_for.append(names)
        return prepare_reference(models, refs[names[0]], config), names

    plan = ReferencePlan(schedule=[(0, ["red"]), (5, ["red"]), (9, ["blue"])])
    seen = []
    for segment, done in colorize_segments(frames(), plan, models, config, prepare,
                                           chunk_size=4):
        index = segment.first_frame + done.index
        assert len(read) <= index + 4 + 1, (index, len(read))  # a chunk and one frame ahead
        seen.append((index, segment.first_frame, segment.references))
        b = float(done.ab[1].mean())  # CIELab b: blue references give negative b
        assert (b < 0) == (segment.references == ["blue"]), (index, b)
    assert [i for i, _, _ in seen] == list(range(14))
    assert sorted({(first, tuple(refs)) for _, first, refs in seen}) == [
        (0, ("red",)), (5, ("red",)), (9, ("blue",))]
    assert prepared_for == [["red"], ["blue"]]  # the same references are kept prepared
