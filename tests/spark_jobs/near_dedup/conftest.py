"""Near-dedup fixtures."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from tests.spark_jobs.near_dedup.corpus_helpers import edit, record, stdlib_sources


@pytest.fixture
def corpus() -> list[dict]:
    """12 originals in repo orig/a; edited copies of 6 of them in 3 single-file repos; an unrelated repo."""
    rng = random.Random(7)
    sources = stdlib_sources(14)
    assert len(sources) == 14, "the standard library should provide 14 moderate Python files"
    recs = [record("orig/a", p, t, stars=50, created=datetime(2020, 1, 1, tzinfo=UTC))
            for p, t in sources[:12]]
    for i, (p, t) in enumerate(sources[:6]):
        recs.append(record(f"copy/{i % 3}", p, edit(t, rng), stars=i))
    recs += [record("other/z", p, t, stars=3) for p, t in sources[12:]]
    recs.append(record("other/z", "tiny.py", "pass\n"))
    return recs
