"""Fixtures of the GitHub crawl tests: a fake GitHub on 127.0.0.1 serving git repositories made here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_github import FakeGitHub  # noqa: E402


@pytest.fixture
def fake_github():
    with FakeGitHub() as server:
        yield server
