"""Every test runs offline: no model hub look-ups (helpers live in tests/helpers/)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
