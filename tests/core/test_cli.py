"""The ``deepexemplar`` command: outputs, bit depth, alpha, metadata, exit codes, no partial files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepexemplar_core.cli import EXIT_INPUT, EXIT_OK, EXIT_WEIGHTS, main
from deepexemplar_core.image_io import read_image, read_metadata


@pytest.fixture()
def files(tmp_path, chelsea_rgb):
    rgb = (chelsea_rgb.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgb).save(tmp_path / "ref.jpg", quality=95)
    gray16 = (gray.astype(np.uint16) * 257)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    rgba = np.dstack([rgb, np.full(gray.shape, 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    return tmp_path


def _run(*args: str) -> int:
    return main(["colorize", *args, "--size", "128", "--family", "lite", "--quiet"])


def test_colorize_one_file(files):
    out = files / "out.png"
    assert _run(str(files / "gray.png"), "-r", str(files / "ref.jpg"), "-o", str(out)) == EXIT_OK
    image = read_image(out)
    assert image.pixels.shape == (3, 300, 451) and image.bit_depth == 8
    meta = read_metadata(out)
    assert meta["deepexemplar:family"] == "lite"
    assert meta["deepexemplar:reference"].endswith("ref.jpg")
    assert "deepexemplar:deepexemplar_version" in meta


def test_sixteen_bit_and_alpha_are_kept(files):
    out = files / "outdir"
    code = _run(str(files / "gray16.png"), str(files / "rgba.png"), "-r", str(files / "ref.jpg"), "-o", str(out))
    assert code == EXIT_OK
    sixteen = read_image(out / "gray16_colorized.png")
    assert sixteen.bit_depth == 16
    rgba = read_image(out / "rgba_colorized.png")
    assert rgba.alpha is not None and abs(float(rgba.alpha.mean()) - 128 / 255) < 1e-2


def test_unreadable_target_is_reported_and_others_written(files, capsys):
    out = files / "mixed"
    code = _run(str(files / "broken.png"), str(files / "gray.png"), "-r", str(files / "ref.jpg"),
                "-o", str(out), "--json")
    assert code == EXIT_INPUT
    summary = json.loads(capsys.readouterr().out)
    status = {r["target"].rsplit("/", 1)[-1]: r["status"] for r in summary["results"]}
    assert status == {"broken.png": "unreadable", "gray.png": "ok"}
    assert not (out / "broken_colorized.png").exists()
    assert (out / "gray_colorized.png").exists()


def test_missing_paper_weights_exit_code_and_fix(files, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp_path / "empty-cache"))
    code = main(["colorize", str(files / "gray.png"), "-r", str(files / "ref.jpg"),
                 "-o", str(files / "p.png"), "--family", "paper"])
    assert code == EXIT_WEIGHTS
    err = capsys.readouterr().err
    assert "deepexemplar convert" in err
    assert not (files / "p.png").exists()


def test_save_intermediates_writes_authors_formats(files):
    out = files / "inter"
    assert _run(str(files / "gray.png"), "-r", str(files / "ref.jpg"), "-o", str(out), "--save-intermediates") == 0
    folder = out / "gray_colorized_intermediates"
    names = {p.name for p in folder.iterdir()}
    assert {"gray_ref.txt", "ref_gray.txt", "gray_ref.combo", "warped.png", "confidence.png"} <= names


@pytest.mark.e2e
def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "deepexemplar_core", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "colorize" in proc.stdout


def test_main_restores_the_previous_sigterm_handler(monkeypatch):
    """``cli.main`` installs its SIGTERM handler only while the command runs."""
    import signal

    from deepexemplar_core.cli import ext

    def mine(signum, frame):  # a host program's own handler (e.g. a notebook, a server)
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    seen = []
    monkeypatch.setattr(ext, "run_doctor",
                        lambda args: seen.append(signal.getsignal(signal.SIGTERM)) or 0)
    try:
        assert main(["doctor"]) == EXIT_OK
        assert seen and seen[0] is not mine  # the command ran under the CLI's handler
        assert signal.getsignal(signal.SIGTERM) is mine
        monkeypatch.setattr(ext, "run_doctor", lambda args: 1 / 0)
        assert main(["doctor"]) == 5  # an unexpected error: exit 5, the handler still restored
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_errors_become_exit_codes_in_main(monkeypatch, capsys):
    """One place maps a command's error to its exit code and its ``error:`` line."""
    from deepexemplar_core.cli import ext
    from deepexemplar_core.weights import WeightsNotFoundError

    cases = [(WeightsNotFoundError("no weights here"), EXIT_WEIGHTS, "error: no weights here\n"),
             (OSError("disk full"), EXIT_INPUT, "error: disk full\n"),
             (ZeroDivisionError("boom"), 5,
              "error: ZeroDivisionError: boom (run with -v for the traceback)\n")]
    for error, code, line in cases:
        def failing(args, error=error):
            raise error
        monkeypatch.setattr(ext, "run_doctor", failing)
        assert main(["doctor"]) == code
        assert capsys.readouterr().err == line
    assert main(["doctor", "-v"]) == 5
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "level"), [
    (["-v", "doctor"], "INFO"), (["doctor", "-v"], "INFO"), (["doctor", "--verbose"], "INFO"),
    (["doctor"], "WARNING")])
@pytest.mark.e2e
def test_verbose_before_or_after_the_sub_command(argv, level):
    """``-v`` sets INFO logging wherever it stands (a fresh process: no logging configured)."""
    code = ("import logging, sys; from deepexemplar_core.cli import main; "
            "code = main(sys.argv[1:]); "
            "print(logging.getLevelName(logging.getLogger().level)); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code, *argv, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout.splitlines()[-1] == level
