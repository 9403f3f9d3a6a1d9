"""Run a stage module by name: ``python lake/entry.py spark_jobs.exact_dedup --snapshot S``.

spark-submit needs a file to run, not a module; this is that file for every Spark stage.
"""

import importlib
import sys


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: entry.py MODULE [stage args...]", file=sys.stderr)
        return 2
    return int(importlib.import_module(argv[0]).main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
