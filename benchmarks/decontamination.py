"""Decontamination speed: our hashed 10-gram index against a plain set of word-tuple 10-grams, same verdicts.

    python benchmarks/decontamination.py --rounds 3

The index (``lake.ngrams.EvalNgramIndex``, what ``spark_jobs.filters.decontaminate`` and the dataset build's final
check use) is built from HumanEval and MBPP (every split), the local profile's evaluation sets. The peer is the
recipe most decontamination scripts use: a Python ``set`` of the evaluation sets' word 10-grams as tuples, and each
document's windows probed one by one (stopping at the first hit, as ours may not: ours computes every window's hash
with numpy). Both use the same words (lower-cased ``\\w+`` runs), so their verdicts must agree on every document;
the benchmark fails if they do not.

Corpus: the ``.py`` files of this interpreter's standard library (real code, sorted), cut at ``--megabytes``.
Rounds are interleaved (ours, peer, ours, peer...); the median of ``--rounds`` is reported with the ratio.
No timing assertions anywhere: measured only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import time
from pathlib import Path


def corpus(megabytes: float) -> list[str]:
    """Real Python: this interpreter's standard library, sorted, up to ``megabytes`` of UTF-8."""
    texts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        text = path.read_text(errors="replace")
        texts.append(text)
        size += len(text.encode())
        if size >= megabytes * 1e6:
            break
    return texts


class TupleSetIndex:
    """The peer: word-tuple n-grams in a Python set, probed window by window."""

    def __init__(self, texts, n: int = 10):
        from lake.ngrams import words

        self.n, self.words = n, words
        self.grams = set()
        for text in texts:
            w = words(text)
            self.grams.update(tuple(w[i:i + n]) for i in range(len(w) - n + 1))

    def contaminated(self, text: str) -> bool:
        w, n = self.words(text), self.n
        return any(tuple(w[i:i + n]) in self.grams for i in range(len(w) - n + 1))


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments
    from lake.evalsets import mbpp_texts
    from lake.ngrams import EvalNgramIndex, EvalSetsConfig, humaneval_texts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=100.0,
                        help="corpus size in MB (default 100: the whole standard library and its tests, 31.5 MB here)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)

    texts = corpus(args.megabytes)
    size_mb = sum(len(t.encode()) for t in texts) / 1e6
    t0 = time.perf_counter()
    ours = EvalNgramIndex.from_settings(EvalSetsConfig())
    t1 = time.perf_counter()
    peer = TupleSetIndex([*humaneval_texts(), *mbpp_texts()], ours.n)
    t2 = time.perf_counter()
    print(f"corpus: {len(texts)} files, {size_mb:.1f} MB of real Python; index: {len(ours):,} 10-grams "
          f"(HumanEval + MBPP), built in {t1 - t0:.2f}s (ours) / {t2 - t1:.2f}s (tuple set)", flush=True)

    times: dict[str, list[float]] = {"ours": [], "tuple_set": []}
    verdicts: dict[str, list[bool]] = {}
    for round_ in range(args.rounds):
        for name, check in (("ours", lambda t: ours.contaminated(t)[0]), ("tuple_set", peer.contaminated)):
            start = time.perf_counter()
            verdict = [check(t) for t in texts]
            seconds = time.perf_counter() - start
            times[name].append(seconds)
            verdicts[name] = verdict
            print(f"round {round_ + 1} {name:<10} {seconds:6.2f}s  {size_mb / seconds:6.2f} MB/s  "
                  f"{sum(verdict)} contaminated", flush=True)
    if verdicts["ours"] != verdicts["tuple_set"]:
        differ = [i for i, (a, b) in enumerate(zip(verdicts["ours"], verdicts["tuple_set"], strict=True)) if a != b]
        print(f"verdicts differ on {len(differ)} files (first: {differ[:5]})", file=sys.stderr)
        return 1
    results = {name: {"median_s": round(statistics.median(ts), 3), "runs_s": [round(t, 3) for t in ts],
                      "mb_per_s": round(size_mb / statistics.median(ts), 2)} for name, ts in times.items()}
    ratio = results["tuple_set"]["median_s"] / results["ours"]["median_s"]
    print(f"ours {results['ours']['mb_per_s']} MB/s, tuple set {results['tuple_set']['mb_per_s']} MB/s "
          f"(medians of {args.rounds}); ours / tuple set throughput: {ratio:.2f}x; same verdicts on all "
          f"{len(texts)} files ({sum(verdicts['ours'])} contaminated)")
    print(guard.report())
    if args.json:
        args.json.write_text(json.dumps({"machine": guard.summary(), "files": len(texts), "megabytes": size_mb,
                                         "index_ngrams": len(ours), "results": results,
                                         "ratio": round(ratio, 3)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
