"""The authors' release: their file formats, the replay of their ``test.py``, their weights.

* :mod:`.formats`: their flow ``.txt`` and ``.combo`` files (read and write);
* :mod:`.replay`: what their ``colorization_subnet/test.py`` feeds the colour network, step by
  step, from their files (and combo files from our correspondences);
* :mod:`.convert`: their released weights (``.pth``, ``.caffemodel``) -> our safetensors files
  with a manifest (``deepexemplar convert``).

This package sits above the stages: it imports the networks, the warp and :mod:`..weights`;
nothing in ``weights/``, ``matching/`` or the stages imports it.
"""
