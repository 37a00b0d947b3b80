"""Shared fixtures: the optional ../shared reference material (tests using it skip without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference"
DATASETS = SHARED / "datasets"


@pytest.fixture
def reference_dir() -> Path:
    """../shared/reference (official weights, paper tables); skips the test when absent."""
    if not (REFERENCE / "weights").is_dir():
        pytest.skip("../shared/reference not available")
    return REFERENCE


@pytest.fixture
def datasets_dir() -> Path:
    """../shared/datasets (Set5, Set14, Sun80); skips the test when absent."""
    if not (DATASETS / "Set5").is_dir():
        pytest.skip("../shared/datasets not available")
    return DATASETS
