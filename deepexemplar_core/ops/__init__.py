"""Compiled kernels (``cuda_ext``) with pure-PyTorch fallbacks.

Importing this package is cheap: the extension is located, compiled or loaded only when an op
or :func:`active_backend` first needs it.
"""

from .patchmatch import ExtensionNotAvailableError, active_backend, patchmatch, window_search

__all__ = ["ExtensionNotAvailableError", "active_backend", "patchmatch", "window_search"]
