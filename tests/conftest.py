"""Shared pytest fixtures. Media fixtures: every synthetic test file is made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_factory import build_media_set


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding every file of ``build_media_set``."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def media_files(media_dir: Path) -> dict[str, Path]:
    """Synthetic images, videos and broken files by name (see ``media_factory.build_media_set``)."""
    return build_media_set(media_dir)
