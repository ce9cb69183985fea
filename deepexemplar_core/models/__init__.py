"""The authors' networks: the gray VGG19-BN backbone and the 13-channel colour net."""

from .colornet import ExampleColorNet, PaperColorizer, colornet_working_size, encode_colornet_input
from .vgg_gray import GrayVGG19BN, encode_vgg_input

__all__ = [
    "ExampleColorNet",
    "GrayVGG19BN",
    "PaperColorizer",
    "colornet_working_size",
    "encode_colornet_input",
    "encode_vgg_input",
]
