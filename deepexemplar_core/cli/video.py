"""``deepexemplar video``: colorize a whole clip from one reference, temporally smoothed.

The clip streams through one call of :func:`~deepexemplar_core.pipeline.colorize_iter` with the
reference prepared once: frames are decoded one at a time, matched starting from the previous
frame's field carried along the optical flow (:class:`~deepexemplar_core.motion.MotionPrior`,
restarted at scene cuts; ``--no-motion`` matches each frame from scratch), colorized, smoothed in
order (:func:`~deepexemplar_core.temporal.smooth_iter`), converted back to RGB and encoded,
so memory does not grow with the clip's length. The output keeps the frame
count, the frame rate (a variable one too: the frame times are copied), the size (odd sizes lose
one pixel row/column in a video file) and the audio track (copied). Nothing is half-written: an
error, Ctrl-C or SIGTERM leaves no output file or folder behind.

Several references (``-r a.png -r b.png``): every frame chooses per pixel among them. A schedule
(``--keyframes "0=a.png,1200=b.png"``) changes the references from a frame on (entries with the
same frame form a set); ``--reference-index IDX [-k K]`` gives each shot its own top-K
recommendations, picked on the shot's first frame (after a scene cut). Matching restarts
wherever the references change; only the current references are held, so memory stays
independent of the clip's length. The summary lists the shots, their references and each
reference's share of the pixels.

``--keyframe K`` colorizes a shot from one key frame: frame K's colours are the reference. For a
colour clip they are frame K's own colours (useful to re-colour a shot consistently or to test);
for a gray clip ``--reference`` must be a colourized version of frame K (by hand or by
``deepexemplar colorize``), which then also gives frame K its colours exactly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import EXIT_ERROR, EXIT_INPUT, EXIT_OK, EXIT_USAGE, exit_code_for
from .colorize import check_writable
from .options import (
    add_model_options,
    config_from_args,
    load_models_from_args,
    once,
    prepare_one_or_set,
)

logger = logging.getLogger("deepexemplar")

#: Mean chroma (CIELab a, b magnitude) above which a frame counts as colour.
COLOUR_CHROMA = 2.0


class UsageError(ValueError):
    """A combination of options that cannot work (exit code 2)."""


def register(subparsers) -> None:
    """Add the ``video`` sub-command to the ``deepexemplar`` parser."""
    parser = subparsers.add_parser(
        "video", help="colorize a video clip (or a folder of frames) from one reference",
        description="Colorize every frame of a clip with one colour reference, smooth the colours "
                    "over time and write a video (audio kept) or a folder of PNG frames.")
    parser.add_argument("input", type=Path,
                        help="video file, or a folder of numbered frames (natural order)")
    parser.add_argument("--reference", "-r", type=Path, action="append", default=None,
                        help="colour reference image (with --keyframe: a colourized frame K); "
                             "repeat for several (each pixel takes the best-matching one)")
    parser.add_argument("--keyframes", default=None, metavar="SCHEDULE",
                        help='references from a frame on, e.g. "0=a.png,1200=b.png" (0-based '
                             "frames, in order; the same frame twice gives a set)")
    parser.add_argument("--reference-index", type=Path, default=None,
                        help="index folder: each shot's first frame picks its own references")
    parser.add_argument("-k", type=int, default=1,
                        help="with --reference-index: the top K recommendations (default 1)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output .mp4/.mov/.mkv/.m4v file, or a new folder for PNG frames")
    parser.add_argument("--temporal", choices=("off", "fast", "bonneel"), default="bonneel",
                        help="temporal smoothing (default bonneel; fast for previews)")
    parser.add_argument("--lambda", dest="lam", type=float, default=None,
                        help="temporal weight of the bonneel mode at 480 lines, scaled for "
                             "other sizes (larger = steadier)")
    parser.add_argument("--flow-preset", choices=("auto", "ultrafast", "fast", "medium"),
                        default=None,
                        help="optical flow preset of the temporal smoothing (default auto: fast "
                             "with --temporal fast, medium with bonneel)")
    parser.add_argument("--scene-cut", type=float, default=None,
                        help="mean temporal weight in [0, 1] below which a frame starts a new shot")
    parser.add_argument("--keyframe", type=int, default=None, metavar="K",
                        help="use frame K (0-based) of the clip as the reference (see docs/video.md)")
    parser.add_argument("--chunk", type=int, default=8,
                        help="frames colorized together (default 8; with motion each frame is "
                             "still matched on its own, from the previous one)")
    parser.add_argument("--no-motion", action="store_true",
                        help="match every frame from scratch instead of starting from the "
                             "previous frame's correspondence carried along the motion")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of a folder of frames (default 25)")
    parser.add_argument("--crf", type=int, default=18,
                        help="H.264 quality, 0 (lossless) to 51 (worst); default 18")
    parser.add_argument("--no-audio", action="store_true", help="do not copy the audio track")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    add_model_options(parser)
    parser.set_defaults(family="lite", run=run)


@dataclass
class _Stats:
    """Seconds per stage, scene cuts and counters collected while streaming."""

    seconds: dict[str, float] = field(default_factory=dict)
    colorize_stages: dict[str, float] = field(default_factory=dict)
    scene_cuts: list[int] = field(default_factory=list)
    frames: int = 0
    reference_features: str = ""
    matching_restarts: int = 0
    shots: list[dict] = field(default_factory=list)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def count_choice(self, index: int, cut: bool, done, refs: list) -> None:
        """Add frame ``index``'s share of pixels per reference to its shot (a cut starts one)."""
        shot = self.shots[-1]
        if cut and shot["first_frame"] != index:
            shot = {"first_frame": index, "references": shot["references"],
                    "choice": [0.0] * len(refs), "frames": 0}
            self.shots.append(shot)
        if len(refs) > 1:
            choice = done.intermediates.choice[done.intermediates.indices.index(done.index)]
            counts = choice.flatten().bincount(minlength=len(refs)).float() / choice.numel()
        else:
            counts = [1.0]
        shot["choice"] = [c + float(n) for c, n in zip(shot["choice"], counts, strict=True)]
        shot["frames"] += 1


@dataclass(frozen=True)
class _Reference:
    """The colour reference, and the key frame's chroma when ``--keyframe`` is used."""

    rgb: object  # (3, H, W) float32 in [0, 1]
    keyframe: int | None
    key_ab: object | None  # (2, H, W) at the clip's size, or None
    source: str


def _check_args(args: argparse.Namespace) -> tuple[str, Path]:
    """Validate option combinations; return the output kind (``"file"``/``"folder"``) and path."""
    from ..video import VIDEO_FORMATS

    if args.chunk < 1:
        raise UsageError(f"--chunk: expected >= 1, got {args.chunk}")
    if args.keyframe is not None and args.keyframe < 0:
        raise UsageError(f"--keyframe: expected a frame index >= 0, got {args.keyframe}")
    refs = args.reference or []
    if args.keyframe is None and not refs and args.keyframes is None and args.reference_index is None:
        raise UsageError("give --reference REF (a colour photo), --keyframes, --reference-index "
                         "or --keyframe K (see --help)")
    if args.keyframe is not None and (len(refs) > 1 or args.keyframes or args.reference_index):
        raise UsageError("--keyframe K takes at most one --reference (a colourized frame K), "
                         "without --keyframes or --reference-index")
    if args.reference_index is not None and (refs or args.keyframes):
        raise UsageError("--reference-index picks the references itself; drop --reference and "
                         "--keyframes")
    if args.k < 1:
        raise UsageError(f"-k: expected >= 1 references, got {args.k}")
    if args.fps is not None and args.fps <= 0:
        raise UsageError(f"--fps: expected a positive frame rate, got {args.fps}")
    if not 0 <= args.crf <= 51:
        raise UsageError(f"--crf: expected 0..51, got {args.crf}")
    output = args.output
    if output.resolve() == args.input.resolve():
        raise UsageError("--output: must differ from the input")
    suffix = output.suffix.lower()
    if suffix in VIDEO_FORMATS:
        return "file", output
    if suffix:
        raise UsageError(f"--output: unsupported suffix {output.suffix!r}; use "
                         f"{', '.join(VIDEO_FORMATS)} or a folder name without suffix")
    return "folder", output


def _temporal(args: argparse.Namespace):
    """The ``TemporalConfig`` of ``--temporal`` and its options (None for ``off``)."""
    if args.temporal == "off":
        return None
    try:
        from ..temporal import TemporalConfig
    except ImportError as err:
        raise UsageError(f"--temporal {args.temporal}: temporal smoothing is not available in "
                         f"this installation ({err}); use --temporal off") from err
    options = {"mode": args.temporal, "lam": args.lam, "flow_preset": args.flow_preset,
               "scene_cut": args.scene_cut}
    return TemporalConfig(**{k: v for k, v in options.items() if v is not None})


def _chroma(rgb):
    """``(3, H, W)`` -> ``(2, H, W)`` CIELab ab."""
    from .. import rgb_to_lab

    return rgb_to_lab(rgb.unsqueeze(0))[0, 1:]


def _reference(args: argparse.Namespace, reader) -> _Reference:
    """Read the reference (and the key frame); errors are ``ValueError`` subclasses (exit 4)."""
    import torch.nn.functional as F

    from .. import read_image

    key = args.keyframe
    if key >= reader.info.frame_count:
        raise UsageError(f"--keyframe: the clip has {reader.info.frame_count} frames "
                         f"(0..{reader.info.frame_count - 1}), got {key}")
    frame = reader.read_frame(key)
    if not args.reference:
        if float(_chroma(frame).norm(dim=0).mean()) < COLOUR_CHROMA:
            raise UsageError(f"--keyframe {key}: the clip is gray; give --reference as a "
                             f"colourized version of frame {key}")
        return _Reference(frame, key, _chroma(frame), f"frame {key} of {args.input}")
    path = args.reference[0]
    rgb = read_image(path).rgb()
    height, width = frame.shape[-2:]
    ratio = (rgb.shape[-1] / rgb.shape[-2]) / (width / height)
    if abs(ratio - 1.0) > 0.02:
        raise ValueError(f"--reference: {rgb.shape[-1]}x{rgb.shape[-2]} has not the aspect ratio "
                         f"of frame {key} ({width}x{height}); with --keyframe it must be a "
                         "colourized version of that frame")
    resized = F.interpolate(rgb.unsqueeze(0), size=(height, width), mode="bilinear",
                            align_corners=False, antialias=True)[0].clamp(0.0, 1.0)
    return _Reference(rgb, key, _chroma(resized), f"{path} (colourized frame {key})")


def _plan(args: argparse.Namespace, frame_count: int, keyed: _Reference | None):
    """Which references colour which frames (:class:`~deepexemplar_core.schedule.ReferencePlan`):
    the key frame's, ``-r``, a ``--keyframes`` schedule of files, or an index's picks per shot.

    Raises:
        UsageError: a schedule the core refuses (malformed, out of order, frames without a
            reference).
        ValueError: a scheduled file that does not exist.
    """
    from ..motion import ShotDetector
    from ..schedule import ReferencePlan, ScheduleError, parse_keyframes

    if keyed is not None:  # --keyframe K: one reference for the whole clip
        return ReferencePlan([keyed.source])
    if args.reference_index is not None:
        from ..recommend import Index, pick_references

        index, k = Index.load(args.reference_index), args.k

        def pick(frame) -> list[Path]:
            found = pick_references(index, frame, k)
            if len(found) < k:
                print(f"warning: -k {k}, but the index has only {len(found)} eligible "
                      "reference(s); using those", file=sys.stderr)
            return found

        return ReferencePlan(shots=ShotDetector(), pick=pick)
    schedule = []
    try:
        if args.keyframes is not None:
            entries, dropped = parse_keyframes(args.keyframes, frame_count, name="--keyframes")
            for sentence in dropped:
                print(f"warning: {sentence}", file=sys.stderr)
            schedule = [(frame, once([Path(ref) for ref in refs], option="--keyframes")[0])
                        for frame, refs in entries]
        for _, paths in schedule:
            for path in paths:
                if not path.is_file():
                    raise ValueError(f"--keyframes: {path}: no such file")
        plan = ReferencePlan(once(list(args.reference or []))[0], schedule, name="--keyframes",
                             hint=" or also give -r")
    except ScheduleError as err:
        raise UsageError(str(err)) from err
    _check_references([plan.fixed, *plan.schedule.values()])
    return plan


def _check_references(sets: list[list[Path]]) -> None:
    """Read every reference of the plan once, before any frame is decoded, so that a file the
    core would refuse stops the run here and not after the frames before its segment.

    Args:
        sets: the references of each segment (an empty one is skipped).

    Raises:
        ImageReadError: a file that cannot be read.
        ValueError: a reference the core refuses (too small, ...), or a segment whose
            references are all gray (the message names the files).
    """
    from .. import read_image
    from ..inputs import ImageError, check_reference

    colour: dict[Path, bool] = {}
    for paths in filter(None, sets):
        for path in paths:
            if path in colour:
                continue
            try:
                check_reference(read_image(path).rgb(), allow_gray=False)
                colour[path] = True
            except ImageError as err:
                if err.kind != "gray":
                    raise ValueError(f"{path}: {err}") from err
                colour[path] = False
        if not any(colour[path] for path in paths):
            raise ValueError(f"{', '.join(map(str, paths))}: no colour (R, G and B agree), so "
                             "the frames would stay gray; pass a colour photo as the reference")


def _colorized_frames(reader, plan, keyed: _Reference | None, models, config, temporal, args,
                      stats: _Stats) -> Iterator:
    """Yield the clip's frames colorized, smoothed and in RGB, one at a time, in order.

    One streaming core call per segment (a run of frames with the same references, see
    :func:`~deepexemplar_core.schedule.colorize_segments`): its references are prepared once,
    frames are decoded as the core asks for them (the decoded frames wait in ``pending`` only
    until their result comes back), and the chroma of every segment goes through one
    :func:`~deepexemplar_core.temporal.smooth_iter` (``temporal``: a ``TemporalConfig``, or None
    for ``--temporal off``).
    """
    import torch

    from .. import read_image
    from ..color import l_ab_to_rgb, rgb_to_l
    from ..schedule import colorize_segments

    pending: dict[int, torch.Tensor] = {}

    def read() -> Iterator[torch.Tensor]:
        frames = iter(reader)
        for number in itertools.count():
            start = time.perf_counter()
            frame = next(frames, None)
            stats.add("read", time.perf_counter() - start)
            if frame is None:
                return
            pending[number] = frame
            yield frame

    def prepare(wanted: list) -> tuple[object, list]:
        start = time.perf_counter()
        images = [keyed.rgb] if keyed is not None else [read_image(p).rgb() for p in wanted]
        prepared = prepare_one_or_set(models, images, wanted, config)
        stats.add("reference", time.perf_counter() - start)
        return prepared

    def colorized() -> Iterator[tuple]:
        """``(index, result, refs, l, ab)`` per frame, segment after segment; ``l`` is None when
        the result's image can be kept."""
        segments = []

        def elsewhere() -> float:  # decoding and preparing references, timed on their own
            return stats.seconds.get("read", 0.0) + stats.seconds.get("reference", 0.0)

        tick, before = time.perf_counter(), 0.0
        for segment, done in colorize_segments(
                read(), plan, models, config, prepare, chunk_size=args.chunk,
                keep_intermediates=lambda seg: len(seg.references) > 1):
            index, refs = segment.first_frame + done.index, segment.references
            if not segments or segments[-1] is not segment:
                segments.append(segment)
                stats.reference_features = ("computed once per segment" if len(segments) > 1
                                            else "computed once")
                stats.shots.append({"first_frame": index, "references": [str(r) for r in refs],
                                    "choice": [0.0] * len(refs), "frames": 0})
            frame = pending.pop(index)
            stats.add("colorize", time.perf_counter() - tick - (elsewhere() - before))
            for key, value in done.timings.items():
                stats.colorize_stages[key] = stats.colorize_stages.get(key, 0.0) + value
            start = time.perf_counter()
            ab, keyed_frame = done.ab, keyed is not None and index == keyed.keyframe
            if keyed_frame:
                ab = keyed.key_ab.to(ab.device)
            l = rgb_to_l(frame.to(ab.device)) if keyed_frame or temporal is not None else None
            stats.add("convert", time.perf_counter() - start)
            yield index, done, refs, l, ab
            tick, before = time.perf_counter(), elsewhere()
        stats.matching_restarts = sum(s.motion.cuts for s in segments if s.motion is not None)

    def image(index: int, done, refs, l, ab, cut: bool) -> torch.Tensor:
        start = time.perf_counter()
        rgb = done.image if l is None else l_ab_to_rgb(l, ab, gamut=config.gamut)
        stats.add("convert", time.perf_counter() - start)
        stats.count_choice(index, cut, done, refs)
        stats.frames = index + 1
        return rgb

    if temporal is None:
        for index, done, refs, l, ab in colorized():
            yield image(index, done, refs, l, ab, False)
        return
    from ..temporal import smooth_iter

    waiting: list[tuple] = []  # the frame inside smooth_iter: its result, l and start time

    def pairs() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index, done, refs, l, ab in colorized():
            waiting.append((index, done, refs, l, time.perf_counter()))
            yield l, ab

    for smoothed in smooth_iter(pairs(), temporal, device=models.device):
        index, done, refs, l, start = waiting.pop()
        stats.add("temporal", time.perf_counter() - start)
        if smoothed.scene_cut:
            stats.scene_cuts.append(index)
        yield image(index, done, refs, l, smoothed.ab, smoothed.scene_cut)


def _write(kind: str, output: Path, frames: Iterator, reader, args, progress):
    from ..video import write_frame_folder, write_video

    info = reader.info
    if kind == "folder":
        return write_frame_folder(output, frames, fps=info.fps, total=info.frame_count,
                                  progress=progress)
    audio = info.path if info.kind == "file" and info.has_audio and not args.no_audio else None
    return write_video(output, frames, fps=info.fps, timestamps=info.timestamps,
                       time_base=info.time_base, audio_from=audio, crf=args.crf,
                       total=info.frame_count, progress=progress)


def run(args: argparse.Namespace) -> int:
    """Implementation of ``deepexemplar video``; returns the exit code."""
    from ..image_io import ImageReadError
    from ..video import VideoReadError, open_video

    try:
        kind, output = _check_args(args)
        reader = open_video(args.input, fps=args.fps, min_frames=2)
        keyed = _reference(args, reader) if args.keyframe is not None else None
        plan = _plan(args, reader.info.frame_count, keyed)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (VideoReadError, ImageReadError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_code_for(err) if isinstance(err, OSError) else EXIT_INPUT
    if not output.parent.is_dir():
        print(f"error: --output: the folder {output.parent} does not exist", file=sys.stderr)
        return EXIT_INPUT
    try:
        check_writable([output.parent])
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    try:
        models = getattr(args, "preloaded_models", None) or load_models_from_args(args)
        config = config_from_args(args, motion=not args.no_motion)
        temporal = _temporal(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_code_for(err)
    info = reader.info
    if not args.quiet:
        print(f"{info.path}: {info.frame_count} frames, {info.width}x{info.height}, "
              f"{float(info.fps):.3f} fps{' (variable: frame times kept)' if info.variable_frame_rate else ''}"
              f"; model family {models.family}, colorizer {models.colorizer.name}", file=sys.stderr)
    if kind == "file" and (info.width % 2 or info.height % 2):
        print(f"warning: the frames are {info.width}x{info.height}; the video will be cropped to "
              f"{info.width - info.width % 2}x{info.height - info.height % 2} (4:2:0 H.264 needs "
              "even sides); write a folder of PNG frames to keep every pixel", file=sys.stderr)
    stats, bar = _Stats(), None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=info.frame_count, unit="frame", file=sys.stderr)
    started = time.perf_counter()
    try:
        frames = _colorized_frames(reader, plan, keyed, models, config, temporal, args, stats)
        written = _write(kind, output, frames, reader, args,
                         (lambda done, total: bar.update(1)) if bar is not None else None)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (cli.Terminated)
        print(f"interrupted after {stats.frames} frames; nothing was written to {output}",
              file=sys.stderr)
        return exit_code_for(stop)
    except Exception as err:
        code = exit_code_for(err)
        if code != EXIT_ERROR:  # a file or input found bad on the way (e.g. an index's pick)
            print(f"error: {err}; nothing was written to {output}", file=sys.stderr)
            return code
        logger.debug("video processing failed", exc_info=True)
        print(f"error: processing failed: {type(err).__name__}: {err}; nothing was written to "
              f"{output}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if bar is not None:
            bar.close()
    stats.add("write", written.encode_seconds)
    summary = _summary(args, info, written, keyed, models, config, stats,
                       time.perf_counter() - started)
    _print_summary(summary, args.json)
    return EXIT_OK


def _summary(args, info, written, keyed: _Reference | None, models, config, stats: _Stats,
             elapsed: float) -> dict:
    frames = max(written.frames, 1)
    if info.kind == "folder" or not info.has_audio:
        audio = "none (the input has no audio)"
    elif args.no_audio:
        audio = "dropped (--no-audio)"
    elif written.codec == "png":
        audio = "dropped (a folder of frames holds no audio)"
    else:
        audio = written.audio
    per_frame = {k: round(v / frames, 5) for k, v in stats.seconds.items()}
    per_frame["total"] = round(elapsed / frames, 5)
    return {
        "input": str(info.path),
        "output": str(written.path),
        "frames": written.frames,
        "fps": float(written.fps),
        "variable_frame_rate": info.variable_frame_rate,
        "size": [info.width, info.height],
        "output_size": [written.width, written.height],
        "cropped_to_even_size": written.cropped,
        "codec": written.codec,
        "audio": audio,
        "temporal": args.temporal,
        "scene_cuts": stats.scene_cuts if args.temporal != "off" else None,
        "reference": keyed.source if keyed else ", ".join(stats.shots[0]["references"]),
        "keyframe": keyed.keyframe if keyed else None,
        "shots": [{"first_frame": shot["first_frame"], "references": shot["references"],
                   "choice": [round(c / max(shot["frames"], 1), 4) for c in shot["choice"]]}
                  for shot in stats.shots],
        "family": models.family,
        "colorizer": models.colorizer.name,
        "working_size": config.size,
        "seconds_per_frame": per_frame,
        "colorize_seconds_per_frame": {k: round(v / frames, 5)
                                       for k, v in stats.colorize_stages.items()},
        "frames_per_second": round(written.frames / elapsed, 3) if elapsed > 0 else None,
        "reference_features": stats.reference_features,
        "matching_restarts": stats.matching_restarts,
    }


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    width, height = summary["output_size"]
    print(f"{summary['input']} -> {summary['output']}: {summary['frames']} frames, {width}x{height}"
          f"{' (cropped to even size)' if summary['cropped_to_even_size'] else ''}, "
          f"{summary['fps']:.3f} fps{' (variable)' if summary['variable_frame_rate'] else ''}, "
          f"audio {summary['audio']}")
    cuts = summary["scene_cuts"]
    if summary["temporal"] == "off":  # the smoothing is what looks for cuts
        print("temporal off; scene cuts not looked for (the smoothing finds them)")
    else:
        print(f"temporal {summary['temporal']}; scene cuts at frames: "
              f"{', '.join(map(str, cuts)) if cuts else 'none'}")
    for shot in summary["shots"]:
        if len(shot["references"]) > 1 or len(summary["shots"]) > 1:
            shares = ", ".join(f"{r} {c:.0%}" for r, c in zip(shot["references"], shot["choice"],
                                                             strict=True))
            print(f"from frame {shot['first_frame']}: {shares}")
    stages = ", ".join(f"{k} {v:.3f}" for k, v in summary["seconds_per_frame"].items())
    print(f"seconds per frame: {stages} ({summary['frames_per_second']} frames/s)")
