"""Make the core tests' shared helper modules (``authors_demo``) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
