"""``deepexemplar convert``: the authors' released files -> safetensors + manifest."""

from __future__ import annotations

import argparse

from ..authors.convert.converters import KINDS, convert_file
from ..weights import default_weights_dir, manifest_path, read_manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` sub-command to an ``argparse`` sub-parser collection."""
    parser = subparsers.add_parser(
        "convert",
        help="convert the authors' weights (example_net.pth, the gray VGG19-BN .caffemodel, "
        "the video vgg19_gray.pth) to safetensors",
        description="Convert one of the authors' released weight files to safetensors with a "
        f"manifest. Default output folder: {default_weights_dir()} (set $DEEPEXEMPLAR_CACHE to "
        "move it); files there are found automatically.",
    )
    parser.add_argument(
        "src",
        help="the file to convert: example_net.pth, the gray VGG19-BN .caffemodel or the video "
        "release's vgg19_gray.pth",
    )
    parser.add_argument(
        "--kind",
        choices=("auto", *KINDS),
        default="auto",
        help="which file it is (default: auto, by content)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="output folder or .safetensors file (default: the local weights folder); an "
        "existing file is replaced atomically, and the same source always gives the same bytes",
    )
    parser.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    """Run the conversion described by ``args``; print what was written. Returns an exit code."""
    from . import EXIT_OK

    path = convert_file(args.src, args.output, kind=args.kind)  # errors: exit codes in cli.main
    manifest = read_manifest(path)
    print(
        f"wrote {path} ({manifest['network']}, {len(manifest['tensors'])} tensors, "
        f"sha256 {manifest['sha256']})"
    )
    print(f"wrote {manifest_path(path)}")
    for note in manifest["notes"]:
        print(f"note: {note}")
    return EXIT_OK
