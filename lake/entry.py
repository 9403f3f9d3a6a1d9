"""Run a stage module as ``python -m`` runs it: ``python lake/entry.py spark_jobs.exact_dedup --snapshot S``.

spark-submit needs a file to run, not a module; this is that file for every Spark stage (the k8s profile submits
``local:///opt/seedcoder/lake/entry.py MODULE ARGS``). The module runs as ``__main__`` exactly as the local
profile's ``python -m MODULE ARGS`` runs it, so a package stage runs its ``__main__.py``.
"""

import runpy
import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: entry.py MODULE [stage args...]", file=sys.stderr)
        return 2
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
