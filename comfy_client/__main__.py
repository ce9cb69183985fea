"""Run the batch client (see :mod:`comfy_client.batch`) from anywhere.

* ``python -m comfy_client ...`` where the package is importable (installed, or from the pack's
  folder);
* ``python /path/to/comfyui-deep-exemplar/comfy_client ...`` from any folder, with any Python 3.10+
  (the client needs only the standard library): run as a folder, this file puts the pack's
  folder on ``sys.path`` first.
"""

import os
import sys

if not __package__:  # run as ``python path/to/comfy_client``: no parent package yet
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from comfy_client.batch import main

sys.exit(main())
