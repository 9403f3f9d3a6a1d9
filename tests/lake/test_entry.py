"""lake/entry.py, the spark-submit application of every Spark stage, runs each stage module as ``python -m`` does."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Every module the DAGs submit to Spark, with its partition flag (tests/plugins checks that the DAGs name
# existing modules).
SPARK_MODULES = {"spark_jobs.crawl": "--snapshot", "spark_jobs.exact_dedup": "--snapshot",
                 "spark_jobs.near_dedup": "--snapshot", "spark_jobs.filters.syntax_filter": "--snapshot",
                 "spark_jobs.filters.rule_filter": "--snapshot", "spark_jobs.filters.decontaminate": "--snapshot",
                 "spark_jobs.filters.pii_redact": "--snapshot", "spark_jobs.dataset.build": "--release",
                 "spark_jobs.release": "--release"}


@pytest.mark.parametrize(("module", "flag"), SPARK_MODULES.items())
def test_entry_runs_the_stage_module_like_python_dash_m(module, flag):
    """Regression: entry.py called ``import_module(m).main``, which package stages (crawl, near_dedup) lack."""
    entry = subprocess.run([sys.executable, str(REPO / "lake" / "entry.py"), module, "--help"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    dash_m = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert entry.returncode == 0, entry.stderr[-2000:]
    assert flag in entry.stdout
    assert entry.stdout == dash_m.stdout, "the same program, the same help"


def test_entry_passes_the_exit_status_and_refuses_no_module():
    bad = subprocess.run([sys.executable, str(REPO / "lake" / "entry.py"), "spark_jobs.exact_dedup", "--snapshot"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--snapshot" in bad.stderr
    usage = subprocess.run([sys.executable, str(REPO / "lake" / "entry.py")], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: entry.py MODULE" in usage.stderr
