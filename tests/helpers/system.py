"""The checkout's root and the Debian tools some tests need (skipped when missing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def need_tools(*tools: str) -> None:
    """Skip the test unless every program is on PATH: they are Debian packages that
    `make test` installs, so a bare checkout still runs the rest."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages; `make test` installs them)")
