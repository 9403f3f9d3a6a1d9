"""Fixtures of the filter tests."""

import pytest


@pytest.fixture
def lake(config):
    return config.open_lake()
