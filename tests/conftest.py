"""Shared test fixtures: paths to the real public data beside the repository."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Folder of real Sentinel-2 data (shared/fixtures beside the clone)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"real fixtures missing: expected {FIXTURES}")
    return FIXTURES
