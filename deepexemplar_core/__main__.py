"""``python -m deepexemplar_core`` runs the ``deepexemplar`` command."""

import sys

from .cli import main

sys.exit(main())
