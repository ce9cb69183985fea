"""``deepexemplar build-ext`` and ``deepexemplar doctor``."""

from __future__ import annotations

import json

import pytest

from deepexemplar_core.cli import EXIT_OK, main
from deepexemplar_core.matching import extension as _build
from deepexemplar_core.matching.doctor import diagnose, format_report


@pytest.fixture(scope="module")
def built():
    try:
        return _build.build()
    except RuntimeError as e:
        pytest.skip(f"the C++ extension cannot be built here: {str(e).splitlines()[0]}")


def test_build_ext_reports_the_library(built, capsys):
    assert main(["build-ext"]) == EXIT_OK
    out = capsys.readouterr().out
    assert str(built.library) in out and "kernels" in out


def test_doctor_names_the_active_backend(built, capsys):
    assert main(["doctor", "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["backend (cpu)"].startswith("cpp: C++ kernels loaded from")
    assert "present" in info["build cache"]


def test_doctor_report_lines():
    info = diagnose()
    text = format_report(info)
    assert len(text.splitlines()) == len(info)
    assert all(" : " in line for line in text.splitlines())
    for key in ("torch", "c++ compiler", "cuda kernels buildable", "backend (cpu)", "backend (cuda)"):
        assert key in info
