"""How many *valid* real files the syntax filter would drop, for every language with files on this machine.

    python benchmarks/syntax_languages.py                        # scan /usr and the venvs, 200 files a language
    python benchmarks/syntax_languages.py --roots /usr/share --per-language 500

Installed software is a corpus of real, working files (shipped code is code that ran), so a language whose grammar
drops many of them needs a tolerance: this prints, per language, the share of distinct real files with any error
node, the error-share quantiles, the drop share at the configured threshold ("unchecked": the language's files
pass unparsed, its grammar being too weak), and the threshold that would keep ``--keep`` of them. It is how the defaults in spark_jobs/filters/syntax_filter.py were checked beyond C/C++.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from lake.languages import grammar_of, language_of
from spark_jobs.filters.syntax_filter import ParseTimeout, SyntaxFilter, parser_for

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOTS = ["/usr/include", "/usr/lib", "/usr/share", "/etc", str(REPO / ".venv/lib"),
                 str(REPO / ".venv-gpu/lib")]


def scan(roots: list[str], max_bytes: int) -> dict[str, list[Path]]:
    """Files under ``roots`` by language (symlinks not followed; only languages with a grammar)."""
    found: dict[str, list[Path]] = defaultdict(list)
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", ".git"))
            for name in sorted(filenames):
                language = language_of(name)
                if language and grammar_of(language):
                    path = Path(dirpath, name)
                    try:
                        if path.is_file() and not path.is_symlink() and 0 < path.stat().st_size <= max_bytes:
                            found[language].append(path)
                    except OSError:
                        continue
    return found


def survey(language: str, paths: list[Path], per_language: int, keep: float, step: SyntaxFilter) -> dict | None:
    rng = random.Random(language)
    texts, seen = [], set()
    for path in rng.sample(paths, len(paths)):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip() and text not in seen:
            seen.add(text)
            texts.append(text)
        if len(texts) >= per_language:
            break
    if not texts:
        return None
    shares, size, t0 = [], 0, time.perf_counter()
    grammar = grammar_of(language)
    for text in texts:
        data = text.encode()
        size += len(data)
        try:
            shares.append(step.measure(language, grammar, data)[0])
        except ParseTimeout:
            shares.append(1.0)
    seconds = time.perf_counter() - t0
    ordered = sorted(shares)
    threshold = step.threshold(language)
    unchecked = language in step.unchecked_languages
    return {"language": language, "files": len(texts), "any_error": sum(s > 0 for s in shares) / len(shares),
            "unchecked": unchecked,
            "q95": ordered[int(0.95 * (len(ordered) - 1))], "keep_threshold": ordered[int(keep * (len(ordered) - 1))],
            "threshold": threshold, "dropped": 0.0 if unchecked else sum(s > threshold for s in shares) / len(shares),
            "mb_per_s": size / max(seconds, 1e-9) / 1e6}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--roots", nargs="+", default=DEFAULT_ROOTS, help="directories to scan")
    parser.add_argument("--per-language", type=int, default=200, help="distinct files sampled per language")
    parser.add_argument("--min-files", type=int, default=20, help="skip languages with fewer real files")
    parser.add_argument("--keep", type=float, default=0.98, help="share of real files a threshold must keep")
    parser.add_argument("--max-bytes", type=int, default=256 * 1024, help="skip larger files")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    step = SyntaxFilter()
    found = scan(args.roots, args.max_bytes)
    print(f"{'language':<16}{'files':>6}{'any error':>11}{'q95 share':>11}{'keep-' + format(args.keep, '.0%'):>10}"
          f"{'threshold':>11}{'dropped':>9}{'MB/s':>7}")
    for language in sorted(found):
        if len(found[language]) < args.min_files or parser_for(grammar_of(language)) is None:
            continue
        r = survey(language, found[language], args.per_language, args.keep, step)
        if r is None or r["files"] < args.min_files:
            continue
        threshold = "unchecked" if r["unchecked"] else f"{r['threshold']:.3f}"
        print(f"{r['language']:<16}{r['files']:>6}{r['any_error']:>11.3f}{r['q95']:>11.4f}{r['keep_threshold']:>10.4f}"
              f"{threshold:>11}{r['dropped']:>9.3f}{r['mb_per_s']:>7.2f}", flush=True)
    print(guard.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
