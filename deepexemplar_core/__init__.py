"""Deep Exemplar-based Colorization (He et al., SIGGRAPH 2018) in PyTorch."""

__version__ = "0.1.0"
