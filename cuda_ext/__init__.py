"""The compiled PatchMatch extension's C++/CUDA sources, shipped as package data.

Nothing here is compiled at import: ``deepexemplar_core.matching.extension`` builds
:data:`SOURCE_DIR` on first use (or with ``deepexemplar build-ext``) into the user cache.
"""

from pathlib import Path

#: Folder holding ``ext.cpp``, ``patchmatch.h``, ``patchmatch_cpu.cpp`` and ``patchmatch_cuda.cu``.
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
