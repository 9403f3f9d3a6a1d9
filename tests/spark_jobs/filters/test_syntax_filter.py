"""The syntax filter on real files: valid code kept, broken code dropped, C macros tolerated, bounds enforced."""

import sysconfig
from pathlib import Path

import pytest
from filter_records import record

from spark_jobs.filters.syntax_filter import ParseTimeout, SyntaxFilter, error_share, parse, parser_for

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def verdict(doc, **kw):
    return SyntaxFilter(**kw).process(doc)


def test_valid_stdlib_python_is_kept():
    for name in ("json/decoder.py", "textwrap.py", "string.py"):
        assert verdict(record(name, (STDLIB / name).read_text())).keep, name


@pytest.mark.parametrize("broken", [
    "def f(x:\n    return x\n",            # unbalanced bracket
    "x = 1\nif x\n    print(x)\n",          # missing colon
    "class A:\n    def f(self):\n        return )\n",  # stray token
])
def test_broken_python_is_dropped_with_line(broken):
    out = verdict(record("bad.py", broken))
    assert not out.keep and out.reason == "syntax_error"
    assert "Python: error share" in out.detail and "first error at line" in out.detail


def test_javascript_valid_and_truncated():
    source = "export function add(a, b) {\n  return [a, b].map((x) => x * 2);\n}\n"
    assert verdict(record("a.js", source)).keep
    assert not verdict(record("a.js", source[:-3])).keep


def test_c_macros_are_tolerated_but_garbage_is_not():
    header = ("#define DECLARE(name) int name##_get(void);\n"
              "DECLARE(foo)\nDECLARE(bar)\n" + "".join(f"int plain_function_{i}(int a, int b);\n" for i in range(60)))
    assert verdict(record("x.h", header)).keep
    garbage = "int main( {{{ ]]] return ;;; }" * 20
    out = verdict(record("x.c", garbage))
    assert not out.keep and out.detail.startswith(("C: error share", "C: mismatched"))


def test_thresholds_are_per_language():
    tolerant = SyntaxFilter(max_error_share={"Python": 0.5})
    assert tolerant.process(record("a.py", "x = (1\n" + "y = 2\n" * 50)).keep
    assert not SyntaxFilter().process(record("a.py", "x = (1\n" + "y = 2\n" * 50)).keep


def test_languages_without_grammar_pass_through_counted():
    step = SyntaxFilter()
    assert step.process(record("a.bat", "@echo off\n((((")).keep
    assert step.take_metrics() == {"no_grammar:Batchfile": 1}


def test_size_bound():
    out = verdict(record("big.py", "x = 1\n" * 1000), max_bytes=100)
    assert not out.keep and out.reason == "syntax_too_large" and "6000 bytes" in out.detail


def test_time_bound_cancels_and_parser_recovers():
    parser = parser_for("python")
    huge = ("x = [" + "1, " * 200_000 + "]\n").encode()
    with pytest.raises(ParseTimeout):
        parse(parser, huge, max_seconds=0.001)
    tree = parse(parser, b"y = 2\n", max_seconds=5)  # the cancelled parse must not leak into the next one
    assert error_share(tree.root_node, 6) == (0.0, None)
    out = verdict(record("huge.py", huge.decode()), max_parse_seconds=0.001)
    assert not out.keep and out.reason == "syntax_timeout"


def test_error_share_grows_with_damage():
    parser = parser_for("c")
    good = b"int f(int a) { return a + 1; }\n" * 20
    one = good + b"int g( { \n"
    many = good + b"@@@ $$$ ### %%% \n" * 20
    shares = [error_share(parser.parse(s).root_node, len(s))[0] for s in (good, one, many)]
    assert shares[0] == 0 < shares[1] < shares[2]


def test_unchecked_languages_pass_counted_and_are_configurable():
    dialect_sql = "SELECT TOP 10 * FROM [dbo].[t] WITH (NOLOCK) ;;; GO\n"
    step = SyntaxFilter()
    assert step.process(record("q.sql", dialect_sql)).keep
    assert step.take_metrics() == {"unchecked:SQL": 1}
    strict = SyntaxFilter(unchecked_languages=())
    assert not strict.process(record("q.sql", "SELECT FROM WHERE ((;\n")).keep


def test_c_header_that_is_cpp_is_judged_by_the_cpp_grammar():
    header = "".join(f"template <typename T> class Box{i} {{ public: T get() const {{ return v; }} T v; }};\n"
                     for i in range(10))
    step = SyntaxFilter()
    c_only = error_share(parser_for("c").parse(header.encode()).root_node, len(header))[0]
    assert c_only > step.threshold("C")
    assert step.measure("C", "c", header.encode())[0] == 0.0
    assert step.process(record("box.h", header)).keep


@pytest.mark.parametrize("source", [
    "def f(x):\n    # the body was cut off\n",
    "class A:\n    def g(self):\n        pass\n    if True:\n",
    "try:\n    x = 1\nx = 2\n",
])
def test_python_errors_without_error_nodes_are_caught(source):
    out = verdict(record("cut.py", source))
    assert not out.keep and out.reason == "syntax_error"


def test_python_structure_check_keeps_valid_blocks_and_try():
    source = "try:\n    x = 1\nexcept* ValueError:\n    pass\nfinally:\n    # done\n    y = 2\n"
    assert verdict(record("ok.py", source)).keep


C_FILE = """#include <stdio.h>
#ifdef __cplusplus
extern "C" {
#endif
#define BEGIN_BLOCK {
#if 0
this is { dead text, don't parse it
#endif
static int twice(int x) {
#ifdef WIDE
    if (x > 0) {
#else
    if (x >= 0) {
#endif
        return x * 2;   /* } in a comment */
    }
    return puts("}");
}
#ifdef __cplusplus
}
#endif
"""


def test_c_family_token_check_keeps_preprocessor_idioms():
    for name in ("x.c", "x.h", "x.cpp", "x.cu"):
        assert verdict(record(name, C_FILE)).keep, name


@pytest.mark.parametrize("broken, kind", [
    (C_FILE.replace("        return x * 2;", "        return (x * 2;"), "mismatched"),
    (C_FILE.replace("    return puts", "    }\n    return puts"), "unopened"),
    (C_FILE.replace('    return puts("}");\n}', '    return puts("}");'), "unclosed"),
    (C_FILE[: C_FILE.index("#ifdef __cplusplus\n}")] + "#ifdef __cplusplus\n}\n", "open_conditional"),
    (C_FILE.replace("/* } in a comment */", "/* } in a comment"), "open_comment"),
])
def test_c_family_token_errors_are_syntax_errors(broken, kind):
    out = verdict(record("x.c", broken))
    assert not out.keep and out.reason == "syntax_error" and f"C: {kind} at line" in out.detail


def test_error_share_sees_every_tree_with_an_error():
    """Compared with tree-sitter's has_error on real files and cut / damaged copies of them: no error is missed."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"], "json").glob("*.py"))
    files += sorted(Path("/usr/include").glob("*.h"))[:40]
    samples = []
    for path in files:
        data = path.read_bytes()
        samples += [data, data[: len(data) // 2], data.replace(b")", b"", 1), data.replace(b"\n", b" */\n", 1)]
    samples.append(b"#define B 1 /* x */ \n")  # tree-sitter-c's hidden MISSING newline
    for data in samples:
        for grammar in ("python", "c", "cpp"):
            root = parser_for(grammar).parse(data).root_node
            assert (error_share(root, len(data))[0] > 0) == root.has_error, (grammar, data[:80])
