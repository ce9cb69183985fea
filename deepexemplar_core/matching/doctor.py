"""What ``deepexemplar doctor`` reports: the environment of the compiled extension.

Every check is cheap (no compilation): versions, CUDA, compiler, the build cache, and the
backend that ``backend="auto"`` would use for CPU and CUDA tensors, with the reason.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys

import torch

from . import extension
from .ops import active_backend


def _compiler() -> str:
    name = os.environ.get("CXX", "c++")
    path = shutil.which(name)
    return path if path else f"not found ({name!r}; install g++ or set CXX)"


def diagnose() -> dict[str, str]:
    """Facts about this machine that decide which matching backend runs.

    Returns:
        Ordered ``{label: value}`` strings: versions, CUDA, compiler, cache and backends.

    Example:
        >>> report = diagnose()
        >>> report["backend (cpu)"].split(":")[0] in ("cpp", "torch")
        True
    """
    with_cuda, cuda_reason = extension.cuda_toolkit()
    info = {
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda})",
        "cuda device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "cuda kernels buildable": f"{'yes' if with_cuda else 'no'}: {cuda_reason}",
        "c++ compiler": _compiler(),
        "ninja": shutil.which("ninja") or "not found (pip install ninja)",
        "sources": str(extension.source_dir()),
    }
    try:
        plan = extension.plan()
        state = "not built" if not plan.library.is_file() else (extension.damage(plan.library)
                                                               or "present")
        info["build cache"] = f"{plan.library} ({state})"
    except OSError as e:
        info["build cache"] = f"unavailable: sources missing ({e})"
    for device in ("cpu", "cuda"):
        if device == "cuda" and not torch.cuda.is_available():
            info["backend (cuda)"] = "n/a: no CUDA device"
            continue
        name, reason = active_backend(device)
        info[f"backend ({device})"] = f"{name}: {reason}"
    return info


def format_report(info: dict[str, str]) -> str:
    """Aligned ``label: value`` lines of :func:`diagnose`'s result."""
    width = max(len(k) for k in info)
    return "\n".join(f"{k.ljust(width)} : {v}" for k, v in info.items())
