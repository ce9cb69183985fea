"""What a demanding user hit on the command line and in the Python API, one test per problem."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from deepexemplar_core.cli import EXIT_INPUT, EXIT_OK, EXIT_TERMINATED, EXIT_WEIGHTS, main


@pytest.fixture()
def files(tmp_path, chelsea_rgb):
    rgb = (chelsea_rgb.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)[:128, :160]
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.roll(gray, 3 * ord(name), axis=1)).save(photos / f"{name}.png")
    Image.fromarray(gray[:16, :16]).save(photos / "tiny.png")
    Image.fromarray(rgb).save(tmp_path / "ref.png")
    Image.fromarray(np.dstack([gray] * 3)).save(tmp_path / "gray_ref.png")
    return tmp_path


def _colorize(*args: str) -> int:
    return main(["colorize", "--size", "64", "--family", "lite", "--quiet", *args])


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_one_invalid_image_does_not_lose_the_batch(files, capsys):
    out = files / "out"
    code = _colorize(str(files / "photos"), "-r", str(files / "ref.png"), "-o", str(out), "--json")
    summary = _json(capsys)
    assert code == EXIT_INPUT
    assert sorted(p.name for p in out.iterdir()) == ["a_colorized.png", "b_colorized.png",
                                                      "c_colorized.png"]
    assert summary["failed"] == [str(files / "photos" / "tiny.png")]
    assert len(summary["written"]) == 3 and summary["skipped"] == []


def test_absurd_sizes_are_refused_or_bounded(files, capsys):
    code = _colorize(str(files / "photos" / "a.png"), "-r", str(files / "ref.png"), "-o",
                     str(files / "o.png"), "--size", "100000")
    assert code == EXIT_INPUT and "size: expected 0 (native) or 32..2048" in capsys.readouterr().err
    from deepexemplar_core.inputs import MAX_WORK_PIXELS, working_size

    h, w = working_size(40, 20000, 256)
    assert h * w <= MAX_WORK_PIXELS and min(h, w) >= 32


def test_a_failed_write_fails_that_target_alone(files, capsys):
    out = files / "out"
    (out / "b_colorized.png").mkdir(parents=True)  # a folder occupies one output name
    code = _colorize(str(files / "photos" / "a.png"), str(files / "photos" / "b.png"),
                     str(files / "photos" / "c.png"), "-r", str(files / "ref.png"), "-o", str(out),
                     "--json")
    summary = _json(capsys)
    assert code == EXIT_INPUT
    assert {os.path.basename(p) for p in summary["written"]} == {"a_colorized.png",
                                                                  "c_colorized.png"}
    assert summary["failed"] == [str(files / "photos" / "b.png")]


def test_an_unusable_output_folder_is_refused_before_the_work(files, capsys, monkeypatch):
    import deepexemplar_core.cli.colorize as command

    monkeypatch.setattr(command, "_colorize_all", lambda *a: pytest.fail("work was started"))
    blocker = files / "file"
    blocker.write_text("x")
    code = _colorize(str(files / "photos" / "a.png"), "-r", str(files / "ref.png"), "-o",
                     str(blocker / "sub"))
    assert code == EXIT_INPUT and "not writable" in capsys.readouterr().err


def test_explicit_weights_are_never_silently_ignored(files, capsys):
    args = [str(files / "photos" / "a.png"), "-r", str(files / "ref.png"), "-o", str(files / "o.png")]
    for option in ("--colornet-weights", "--backbone-weights", "--weights"):
        code = main(["colorize", *args, "--size", "64", "--quiet", option, str(files / "missing")])
        assert code == EXIT_WEIGHTS, option
        assert str(files / "missing") in capsys.readouterr().err
    assert not (files / "o.png").exists()


def test_device_and_cache_problems_are_messages_not_tracebacks(files, capsys, monkeypatch):
    args = [str(files / "photos" / "a.png"), "-r", str(files / "ref.png"), "-o", str(files / "o.png")]
    assert _colorize(*args, "--device", "gpu") == EXIT_INPUT
    assert "device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got 'gpu'" in capsys.readouterr().err
    blocker = files / "not_a_folder"
    blocker.write_text("x")
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(blocker))  # the weights cache cannot be written
    assert _colorize(*args) == EXIT_WEIGHTS
    assert "DEEPEXEMPLAR_CACHE to a writable folder" in capsys.readouterr().err


def test_a_damaged_cached_extension_is_never_opened(tmp_path, monkeypatch):
    from deepexemplar_core.matching import extension

    monkeypatch.setenv("DEEPEXEMPLAR_EXT_DIR", str(tmp_path))
    plan = extension.plan()
    plan.library.parent.mkdir(parents=True)
    plan.library.write_bytes(b"\x7fELF" + b"\0" * 60)  # truncated
    (plan.library.parent / (plan.library.name + ".sha256")).write_text("0" * 64)
    assert "damaged" in extension.damage(plan.library)
    with pytest.raises(OSError, match="damaged.*build-ext --force"):
        extension._open(plan.library)


def test_sigterm_during_a_write_leaves_no_file_and_exits_143(files, monkeypatch, capsys):
    import deepexemplar_core.image_io as image_io

    original = image_io._ENCODERS["png"]

    def terminated_mid_write(f, array, metadata):
        f.write(b"\x89PNG partial")
        os.kill(os.getpid(), signal.SIGTERM)
        original(f, array, metadata)

    monkeypatch.setitem(image_io._ENCODERS, "png", terminated_mid_write)
    out = files / "out"
    code = _colorize(str(files / "photos" / "a.png"), str(files / "photos" / "b.png"), "-r",
                     str(files / "ref.png"), "-o", str(out), "--json")
    assert code == EXIT_TERMINATED
    assert list(out.iterdir()) == []  # no output, no hidden temporary file
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == [] and len(summary["skipped"]) == 2


def test_convert_exit_codes_and_messages(tmp_path, capsys):
    from safetensors.torch import save_file

    good = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(4)}, str(good))
    truncated = tmp_path / "w2.safetensors"
    truncated.write_bytes(good.read_bytes()[:-3])
    assert main(["convert", str(truncated), "-o", str(tmp_path / "o")]) == EXIT_WEIGHTS
    assert "safetensors file, which needs no conversion" in capsys.readouterr().err
    pickle_path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), pickle_path)  # a whole pickled model, not a state_dict
    assert main(["convert", str(pickle_path), "-o", str(tmp_path / "o")]) == EXIT_WEIGHTS
    err = capsys.readouterr().err
    assert "never loaded here" in err and "weights_only=False" not in err and "\x1b" not in err
    caffe = tmp_path / "vgg.caffemodel"
    caffe.write_bytes(b"\x0a\xff\xff\xff")
    assert main(["convert", str(caffe), "-o", str(tmp_path / "o")]) == EXIT_WEIGHTS
    assert str(caffe) in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nothing.pth")]) == EXIT_INPUT


def test_gray_reference_is_refused(files, capsys):
    code = _colorize(str(files / "photos" / "a.png"), "-r", str(files / "gray_ref.png"), "-o",
                     str(files / "o.png"))
    assert code == EXIT_INPUT and "no colour" in capsys.readouterr().err
    assert not (files / "o.png").exists()


@pytest.mark.parametrize(("output", "several", "message"), [
    ("x.webp", False, "cannot write .webp"),
    ("x.gif", True, "cannot write .gif"),
    ("x.png", True, "need an output folder"),
])
def test_output_paths_are_checked_before_the_work(files, capsys, output, several, message):
    targets = [str(files / "photos" / "a.png")] + ([str(files / "photos" / "b.png")] if several else [])
    code = _colorize(*targets, "-r", str(files / "ref.png"), "-o", str(files / output))
    assert code == EXIT_INPUT and message in capsys.readouterr().err
    assert not (files / output).exists()


def test_output_equal_to_input_is_refused(files, capsys):
    target = files / "photos" / "a.png"
    before = target.read_bytes()
    assert _colorize(str(target), "-r", str(files / "ref.png"), "-o", str(target)) == EXIT_INPUT
    assert "is the input itself" in capsys.readouterr().err and target.read_bytes() == before


def test_default_batch_is_one_and_times_are_per_file(files, capsys):
    from deepexemplar_core.cli import build_parser

    args = build_parser().parse_args(["colorize", "a.png", "-r", "b.png", "-o", "o"])
    assert args.batch_size == 1
    code = main(["colorize", str(files / "photos" / "a.png"), str(files / "photos" / "b.png"),
                 "-r", str(files / "ref.png"), "-o", str(files / "o"), "--size", "64",
                 "--family", "lite", "--quiet", "--json", "--batch-size", "2"])
    results = _json(capsys)["results"]
    assert code == EXIT_OK
    a, b = (r["timings"] for r in results)
    shared = set(a) - {"upsample", "total"}  # the batch's stages, split between its files
    assert shared >= {"resize", "features", "matching", "similarity", "colorize"}
    assert all(a[k] == b[k] for k in shared), (a, b)
    for own in (a, b):  # the upsampling is timed per file; the total is the file's own sum
        assert own["upsample"] > 0
        assert own["total"] == pytest.approx(sum(v for k, v in own.items() if k != "total"),
                                             abs=1e-3)
    # each file's share is the batch's time divided by its size (not the whole batch's time)
    from deepexemplar_core import ColorizeConfig, colorize_iter, load_models, read_image

    photos = [read_image(files / "photos" / n).pixels for n in ("a.png", "b.png")]
    reference = read_image(files / "ref.png").rgb()
    done = list(colorize_iter(photos, reference, load_models("lite"), ColorizeConfig(size=64),
                              chunk_size=2, keep_intermediates=True))
    chunk = done[0].intermediates
    assert chunk is done[1].intermediates and chunk.indices == (0, 1)
    for stage, seconds in {**chunk.match.timings, **chunk.similarity.timings,
                           **chunk.timings}.items():
        assert [d.timings[stage] for d in done] == pytest.approx([seconds / 2] * 2), stage
