"""``deepexemplar convert``: the authors' released weights -> safetensors + manifest."""

from .caffemodel import CaffeModelError, read_caffemodel
from .converters import (
    convert_colornet_pth,
    convert_file,
    convert_gray_vgg_caffemodel,
    convert_video_vgg_pth,
)
from .torch_files import ConversionError, read_legacy_torch

__all__ = [
    "CaffeModelError",
    "ConversionError",
    "convert_colornet_pth",
    "convert_file",
    "convert_gray_vgg_caffemodel",
    "convert_video_vgg_pth",
    "read_caffemodel",
    "read_legacy_torch",
]
