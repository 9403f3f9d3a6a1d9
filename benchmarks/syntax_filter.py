"""Syntax filter accuracy and speed against real parsers, on real files plus seeded corruptions.

    python benchmarks/syntax_filter.py                      # Python, JavaScript, C headers; 300 files each
    python benchmarks/syntax_filter.py --limit 1000 --languages Python

Ground truth is a real parser: ``ast.parse`` for Python; V8 for JavaScript (one ``node`` process compiling each
file as a CommonJS function body and, failing that, as an ES module: ``node --check`` alone passes
import/export files with errors); javac's parser for Java (``JavacTask.parse`` of the same JDK over its own
sources in src.zip, one ``java`` process). Every real file also gets three seeded corruptions (truncation, an unbalanced
bracket, a stray token) at positions drawn from a per-file seed; a corruption that lands in a string or comment
may still be valid, which is why the label comes from the parser, not from the corruption.

Reported per language: precision / recall of "invalid", the share of valid real files dropped, and files/s and
MB/s of the filter on one core, with the peer parser's speed on the same files and the ratio. For C and C++ there
is no parser that accepts a header out of its build context, so only real /usr/include headers are measured (C++:
the libstdc++ and LLVM trees; C: the rest): the distribution of their error share, the threshold that keeps
``--keep`` of them (how the C-family thresholds in spark_jobs/filters/syntax_filter.py were chosen), and the drop
share at the configured threshold.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import platform
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lake.languages import grammar_of
from spark_jobs.filters.syntax_filter import SyntaxFilter, error_share, parser_for

log = logging.getLogger("bench.syntax")

NODE_CHECKER = r"""
const fs = require('fs'); const vm = require('vm');
const files = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = []; const t0 = process.hrtime.bigint();
for (const f of files) {
  const src = fs.readFileSync(f, 'utf8').replace(/^#!.*/, '');
  let ok = true;
  try { vm.compileFunction(src, ['exports', 'require', 'module', '__filename', '__dirname']); }
  catch (e) { try { new vm.SourceTextModule(src); } catch (e2) { ok = false; } }
  out.push(ok);
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(JSON.stringify({valid: out, ms}));
"""


JAVA_CHECKER = r"""
import com.sun.source.util.JavacTask;
import java.nio.file.*;
import java.util.*;
import javax.tools.*;

public class SyntaxCheck {
  public static void main(String[] args) throws Exception {
    JavaCompiler compiler = ToolProvider.getSystemJavaCompiler();
    List<String> files = Files.readAllLines(Path.of(args[0]));
    StringBuilder valid = new StringBuilder();
    long t0 = System.nanoTime();
    try (StandardJavaFileManager fm = compiler.getStandardFileManager(null, null, null)) {
      for (String file : files) {
        DiagnosticCollector<JavaFileObject> diags = new DiagnosticCollector<>();
        JavacTask task = (JavacTask) compiler.getTask(null, fm, diags, List.of("-proc:none"), null,
            fm.getJavaFileObjects(file));
        task.parse();
        valid.append(diags.getDiagnostics().stream().anyMatch(d -> d.getKind() == Diagnostic.Kind.ERROR) ? '0' : '1');
      }
    }
    System.out.println(valid + " " + (System.nanoTime() - t0) / 1000000);
  }
}
"""
JDK = Path("/usr/lib/jvm/temurin-25-jdk-amd64")  # its src.zip is present; the Debian JDK 17's link is dangling


@dataclass
class Sample:
    name: str
    source: str
    real: bool  # an unmodified real file (vs a seeded corruption)


def corruptions(text: str, seed: str) -> list[tuple[str, str]]:
    """Three seeded corruptions of ``text``: (kind, corrupted text)."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    out = [("truncate", text[: int(len(text) * rng.uniform(0.3, 0.9))])]
    closers = [i for i, ch in enumerate(text) if ch in ")]}"]
    if closers:
        i = rng.choice(closers)
        out.append(("unbalanced", text[:i] + text[i + 1:]))
    else:
        i = rng.randrange(len(text) + 1)
        out.append(("unbalanced", text[:i] + "(" + text[i:]))
    i = rng.randrange(len(text) + 1)
    out.append(("stray", text[:i] + rng.choice([")", "}", "]", " = = ", " @@ "]) + text[i:]))
    return out


def real_files(language: str, limit: int) -> list[Path]:
    roots = {"Python": (Path(sysconfig.get_paths()["stdlib"]), "*.py"),
             "JavaScript": (Path("/usr/lib/node_modules"), "*.js"),
             "C": (Path("/usr/include"), "*.h"),
             "C++": (Path("/usr/include"), "*.h")}
    root, pattern = roots[language]
    cpp_trees = ("/usr/include/c++/", "/usr/include/llvm-")  # headers that are C++ whatever their extension
    files = [p for p in sorted(root.rglob(pattern))
             if p.is_file() and str(p).startswith(cpp_trees) == (language == "C++")
             and 0 < p.stat().st_size <= 256 * 1024]
    rng = random.Random(0)
    return sorted(rng.sample(files, min(limit, len(files))))


def load(paths: list[Path]) -> list[tuple[Path, str]]:
    """Decodable files, each distinct content once (node ships one copy of its OpenSSL headers per arch; the
    pipeline's dedup would remove those copies too)."""
    out, seen = [], set()
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if text not in seen:
            seen.add(text)
            out.append((path, text))
    return out


def truth_python(samples: list[Sample]) -> tuple[list[bool], float]:
    valid, t0 = [], time.perf_counter()
    for s in samples:
        try:
            ast.parse(s.source)
            valid.append(True)
        except (SyntaxError, ValueError):
            valid.append(False)
    return valid, time.perf_counter() - t0


def truth_javascript(samples: list[Sample]) -> tuple[list[bool], float]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, s in enumerate(samples):
            path = Path(tmp, f"{i}.js")
            path.write_text(s.source)
            paths.append(str(path))
        listing = Path(tmp, "files.json")
        listing.write_text(json.dumps(paths))
        script = Path(tmp, "check.cjs")
        script.write_text(NODE_CHECKER)
        proc = subprocess.run(["node", "--experimental-vm-modules", "--no-warnings", str(script), str(listing)],
                              capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    return result["valid"], result["ms"] / 1000


def java_files(limit: int) -> list[tuple[str, str]]:
    """Real Java: the JDK's own sources (src.zip), each distinct file once."""
    with zipfile.ZipFile(JDK / "lib" / "src.zip") as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".java") and not n.endswith("module-info.java"))
        chosen = sorted(random.Random(0).sample(names, min(limit, len(names))))
        texts = [(name, archive.read(name).decode("utf-8", "replace")) for name in chosen]
    seen, out = set(), []
    for name, text in texts:
        if text not in seen and len(text.encode()) <= 256 * 1024:
            seen.add(text)
            out.append((name, text))
    return out


def truth_java(samples: list[Sample]) -> tuple[list[bool], float]:
    """javac's own parser (JavacTask.parse, no attribution): syntax errors only, as for the other languages."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, s in enumerate(samples):
            path = Path(tmp, f"S{i}.java")
            path.write_text(s.source)
            paths.append(str(path))
        listing = Path(tmp, "files.txt")
        listing.write_text("\n".join(paths) + "\n")
        script = Path(tmp, "SyntaxCheck.java")
        script.write_text(JAVA_CHECKER)
        proc = subprocess.run([str(JDK / "bin" / "java"), str(script), str(listing)], capture_output=True, text=True,
                              check=True)
    flags, ms = proc.stdout.split()
    return [c == "1" for c in flags], int(ms) / 1000


TRUTH = {"Python": ("ast.parse", truth_python), "JavaScript": ("V8 (node vm)", truth_javascript),
         "Java": ("javac parser", truth_java)}


def evaluate(language: str, limit: int) -> dict:
    files = java_files(limit) if language == "Java" else load(real_files(language, limit))
    samples = []
    for path, text in files:
        samples.append(Sample(str(path), text, True))
        samples.extend(Sample(f"{path}#{kind}", bad, False) for kind, bad in corruptions(text, str(path)))
    peer, check = TRUTH[language]
    truth, peer_seconds = check(samples)
    step = SyntaxFilter()
    t0 = time.perf_counter()
    dropped = [not step.process({"path": s.name, "language": language, "content": s.source}).keep for s in samples]
    seconds = time.perf_counter() - t0
    tp = sum(d and not t for d, t in zip(dropped, truth, strict=True))
    fp = sum(d and t for d, t in zip(dropped, truth, strict=True))
    fn = sum(not d and not t for d, t in zip(dropped, truth, strict=True))
    real_valid = [d for d, t, s in zip(dropped, truth, samples, strict=True) if s.real and t]
    size = sum(len(s.source.encode()) for s in samples)
    return {"language": language, "files": len(samples), "real": len(files), "invalid": truth.count(False),
            "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "tp": tp, "fp": fp, "fn": fn,
            "valid_real_dropped": sum(real_valid) / max(len(real_valid), 1),
            "files_per_s": len(samples) / seconds, "mb_per_s": size / seconds / 1e6,
            "peer": peer, "peer_mb_per_s": size / peer_seconds / 1e6}


def headers(language: str, limit: int, keep: float) -> dict:
    """Error shares of real headers of ``language`` (C: /usr/include; C++: its libstdc++ and LLVM trees)."""
    files = load(real_files(language, limit))
    grammar = grammar_of(language)
    step, parser = SyntaxFilter(), parser_for(grammar)
    shares, c_only, t0, size = [], [], time.perf_counter(), 0
    for _path, text in files:
        data = text.encode()
        size += len(data)
        shares.append(step.measure(language, grammar, data)[0])
    seconds = time.perf_counter() - t0
    for _path, text in files:
        data = text.encode()
        c_only.append(error_share(parser.parse(data).root_node, len(data))[0])
    ordered = sorted(shares)
    chosen = ordered[min(len(ordered) - 1, int(keep * len(ordered)))]
    threshold = step.threshold(language)
    return {"language": f"{language} (real /usr/include headers)", "files": len(files),
            "has_error_node": sum(s > 0 for s in c_only) / len(c_only),
            "quantiles": {q: round(ordered[int(q * (len(ordered) - 1))], 4) for q in (0.5, 0.9, 0.95, 0.98, 0.99)},
            "threshold_keeping": {"keep": keep, "threshold": round(chosen, 4)},
            "configured_threshold": threshold,
            "dropped_at_configured": sum(s > threshold for s in shares) / len(shares),
            "dropped_by_any_error_rule": sum(s > 0 for s in c_only) / len(c_only),
            "dropped_at_configured_without_cpp_fallback": sum(s > threshold for s in c_only) / len(c_only),
            "files_per_s": len(files) / seconds, "mb_per_s": size / seconds / 1e6}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--limit", type=int, default=300, help="real files per language (each gets 3 corruptions)")
    parser.add_argument("--languages", default="Python,JavaScript,C,C++", help="comma-separated subset")
    parser.add_argument("--keep", type=float, default=0.98, help="C: share of real headers a threshold must keep")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results = []
    for language in args.languages.split(","):
        log.info("measuring %s on up to %d real files", language, args.limit)
        results.append(headers(language, args.limit, args.keep) if language.startswith("C")
                       else evaluate(language, args.limit))
    print(f"# syntax filter benchmark  ({platform.machine()}, {platform.python_version()}, one core)")
    for r in results:
        if "precision" in r:
            print(f"{r['language']:<11} files {r['files']:>5} (real {r['real']}, invalid {r['invalid']})  "
                  f"precision {r['precision']:.3f}  recall {r['recall']:.3f}  (tp {r['tp']} fp {r['fp']} fn {r['fn']})"
                  f"  valid real dropped {r['valid_real_dropped']:.3f}")
            print(f"{'':<11} filter {r['files_per_s']:.0f} files/s {r['mb_per_s']:.2f} MB/s;  peer {r['peer']} "
                  f"{r['peer_mb_per_s']:.2f} MB/s;  filter/peer speed ratio {r['mb_per_s'] / r['peer_mb_per_s']:.3f}")
        else:
            print(f"{r['language']}: {r['files']} files, any-error-node share {r['has_error_node']:.3f}, "
                  f"error-share quantiles {r['quantiles']}")
            print(f"   threshold keeping {r['threshold_keeping']['keep']:.0%}: {r['threshold_keeping']['threshold']}; "
                  f"configured {r['configured_threshold']} drops {r['dropped_at_configured']:.3f} "
                  f"(own grammar alone {r['dropped_at_configured_without_cpp_fallback']:.3f}; "
                  f"any-error rule {r['dropped_by_any_error_rule']:.3f}); "
                  f"{r['files_per_s']:.0f} files/s {r['mb_per_s']:.2f} MB/s")
    if args.json:
        print(json.dumps(results, indent=2))
    print(guard.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
