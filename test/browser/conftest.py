"""Browser tests of the ground console: the integration tests' console helpers
(test/integration/console_support.py) are importable from here."""

from __future__ import annotations

import sys
from pathlib import Path

INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)
