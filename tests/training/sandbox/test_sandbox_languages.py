"""Every language the sandbox runs: a right and a wrong answer on stdio cases, compile errors, time and memory
limits, and the plain ``run_code`` result in SandboxFusion's shape."""

from __future__ import annotations

import base64

import pytest
from sandbox_helpers import leftovers, needs_isolation, run

from training.sandbox import IOCase, Limits, RunStatus, Tests, Verdict

pytestmark = needs_isolation

SUM = Tests(kind="stdio", cases=[IOCase(stdin="1 2\n", stdout="3"), IOCase(stdin="40 2\n", stdout="42\n")])
LIMITS = Limits(compile_timeout=60, run_timeout=10)

PROGRAMS = {
    "python": ("a, b = map(int, input().split())\nprint(a + b)\n", "a, b = map(int, input().split())\nprint(a - b)\n"),
    "cpp": ("#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n",
            "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a * b << '\\n'; }\n"),
    "java": ("import java.util.*;\npublic class Solution {\n  public static void main(String[] args) {\n"
             "    Scanner in = new Scanner(System.in);\n    System.out.println(in.nextLong() + in.nextLong());\n  }\n}\n",
             "class Main {\n  public static void main(String[] args) {\n    System.out.println(3);\n  }\n}\n"),
    "nodejs": ("const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n"
               "console.log(a + b);\n", "console.log(3);\n"),
    "go": ("package main\nimport \"fmt\"\nfunc main() { var a, b int; fmt.Scan(&a, &b); fmt.Println(a + b) }\n",
           "package main\nimport \"fmt\"\nfunc main() { fmt.Println(3) }\n"),
}
BROKEN = {"python": "def f(:\n", "cpp": "int main( {\n", "java": "public class Main { void f( }\n",
          "nodejs": "function f( {\n", "go": "package main\nfunc main() { x := }\n"}
SPIN = {"python": "while True:\n    pass\n", "cpp": "int main() { volatile long x = 0; for (;;) x++; }\n",
        "java": "public class Main { public static void main(String[] a) { long x = 0; while (true) x++; } }\n",
        "nodejs": "let x = 0; for (;;) x++;\n", "go": "package main\nfunc main() { x := 0; for { x++ } }\n"}
HOG = {"python": "blocks = []\nwhile True:\n    blocks.append(bytearray(32 << 20))\n",
       "cpp": "#include <vector>\nint main() { std::vector<std::vector<char>> v; for (;;) v.emplace_back(1 << 24, 1); }\n",
       "java": ("import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
                "  List<long[]> l = new ArrayList<>(); while (true) l.add(new long[1 << 20]); } }\n"),
       "nodejs": "const keep = []; for (;;) keep.push(new Array(1 << 20).fill(1));\n",
       "go": ("package main\nfunc main() { var keep [][]byte\n  for { b := make([]byte, 1<<24)\n"
              "    for i := range b { b[i] = 1 }\n    keep = append(keep, b) } }\n")}


@pytest.fixture(autouse=True)
def nothing_survives():
    yield
    assert leftovers() == []


@pytest.mark.parametrize("language", sorted(PROGRAMS))
def test_right_and_wrong_answers(language):
    right, wrong = PROGRAMS[language]
    passed = run(right, language, SUM, LIMITS)
    assert passed.verdict == Verdict.passed, passed
    assert passed.status == RunStatus.Success and len(passed.cases) == 2
    assert [c.stdout.strip() for c in passed.cases] == ["3", "42"]
    failed = run(wrong, language, SUM, LIMITS)
    assert failed.verdict == Verdict.wrong_answer and "case" in failed.detail
    assert failed.status == RunStatus.Failed


@pytest.mark.parametrize("language", sorted(BROKEN))
def test_programs_that_do_not_compile(language):
    result = run(BROKEN[language], language, SUM, LIMITS)
    if language in ("python", "nodejs"):  # interpreted: the syntax error is a runtime error
        assert result.verdict == Verdict.runtime_error and result.compile_result is None
    else:
        assert result.verdict == Verdict.compile_error and result.compile_result.return_code != 0
        assert result.run_result is None and result.compile_result.stderr


@pytest.mark.parametrize("language", sorted(SPIN))
def test_time_limit(language):
    result = run(SPIN[language], language, SUM, Limits(compile_timeout=60, run_timeout=2))
    assert result.verdict == Verdict.timeout and result.run_result.status == "TimeLimitExceeded"


@pytest.mark.parametrize("language", sorted(HOG))
def test_memory_limit(language):
    result = run(HOG[language], language, SUM, Limits(compile_timeout=60, run_timeout=20, memory_limit_MB=256))
    assert result.verdict == Verdict.memory_limit, result.run_result


def test_compile_timeout():
    # the whole standard library and deep template recursion at -O2: seconds of compiling, far over 0.3 s
    code = "#include <bits/stdc++.h>\n" + "\n".join(
        f"template<int N> struct G{i} {{ static const int v = G{i}<N-1>::v + 1; }};"
        f" template<> struct G{i}<0> {{ static const int v = 0; }};" for i in range(200))
    code += "\nint main() { return " + " + ".join(f"G{i}<500>::v" for i in range(200)) + " > 0 ? 0 : 1; }\n"
    result = run(code, "cpp", SUM, Limits(compile_timeout=0.3, run_timeout=5))
    assert result.verdict == Verdict.compile_timeout and result.compile_result.status == "TimeLimitExceeded"
    assert result.run_result is None


def test_run_code_without_tests_reports_like_sandboxfusion():
    ok = run("import sys\nprint('out'); print('err', file=sys.stderr)", "python", None, LIMITS)
    assert ok.status == RunStatus.Success and ok.verdict is None
    assert ok.run_result.stdout == "out\n" and ok.run_result.stderr == "err\n" and ok.run_result.return_code == 0
    bad = run("raise SystemExit(3)", "python", None, LIMITS)
    assert bad.status == RunStatus.Failed and bad.run_result.return_code == 3


def test_files_and_stdin_reach_the_program():
    files = {"data/input.txt": base64.b64encode(b"hello from a file").decode(), "skipped.txt": None}
    code = "import sys\nprint(open('data/input.txt').read(), sys.stdin.read().upper())\n"
    result = run(code, "python", None, LIMITS, files=files, stdin="and stdin")
    assert result.run_result.stdout == "hello from a file AND STDIN\n"
    escape = run("print(1)", "python", None, LIMITS, files={"../evil": base64.b64encode(b"x").decode()})
    assert escape.status == RunStatus.SandboxError and "relative" in escape.message


def test_asserts_tests_are_python_only():
    result = run(PROGRAMS["cpp"][0], "cpp", Tests(code="assert(1);"), LIMITS)
    assert result.status == RunStatus.SandboxError and result.verdict == Verdict.sandbox_error
    assert "stdio" in result.message
