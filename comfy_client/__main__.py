"""``python -m comfy_client`` runs the batch client (see :mod:`comfy_client.batch`)."""

import sys

from .batch import main

sys.exit(main())
