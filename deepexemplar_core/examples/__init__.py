"""The bundled example pair (public domain; sources in ``LICENSE.md`` beside this file).

Example:
    >>> EXAMPLE_TARGET.name, EXAMPLE_REFERENCE.is_file()
    ('hopper_gray.jpg', True)
"""

from pathlib import Path

__all__ = ["EXAMPLES_DIR", "EXAMPLE_REFERENCE", "EXAMPLE_TARGET"]

EXAMPLES_DIR = Path(__file__).resolve().parent
#: Gray target: Grace Hopper's 1984 official portrait, 320 x 375, 8-bit gray JPEG.
EXAMPLE_TARGET = EXAMPLES_DIR / "hopper_gray.jpg"
#: Colour reference: astronaut Eileen Collins' official portrait, 320 x 320 sRGB JPEG.
EXAMPLE_REFERENCE = EXAMPLES_DIR / "astronaut_reference.jpg"
