"""The C-family compile check: gcc -fsyntax-only of a file with its repository's headers (spark_jobs/filters/c_compile).

Every test runs the real compiler on repositories written here; what the crawl and the filter stage hand it is
tested in test_filter_stages.py (the crawl's files as each document's repository, on Spark and locally).
"""

import shutil

import pytest
from filter_records import record

from spark_jobs.filters.c_compile import CompileCheck, Repository
from spark_jobs.filters.syntax_filter import SyntaxFilter

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the compile check runs gcc")

CHECK = CompileCheck()
LIB = Repository({
    "include/lib/api.h": "#ifndef API_H\n#define API_H\n#define EXPORT __attribute__((visibility(\"default\")))\n"
                         "typedef struct { int x, y; } point;\n#endif\n",
    "src/util.h": "static inline int twice(int v) { return 2 * v; }\n",
})
GOOD = '#include <stdio.h>\n#include "lib/api.h"\n#include "util.h"\n\nEXPORT int norm(point p) {\n' \
       '    int s = twice(p.x) + p.y;\n    printf("%d\\n", s);\n    return s;\n}\n'


def test_includes_resolve_in_the_repository_by_suffix_and_relative_path():
    assert CHECK.first_error("C", "src/norm.c", GOOD, LIB) is None


def test_a_stray_token_is_a_parse_error_on_its_line():
    broken = GOOD.replace("return s;", "return s s;")
    error = CHECK.first_error("C", "src/norm.c", broken, LIB)
    assert error is not None and error.parse_error and error.line == 8 and "expected" in error.message


def test_without_the_repository_the_macro_is_unknown():
    """The file alone: lib/api.h is stubbed, EXPORT and point are unknown, and gcc reports a parse error."""
    error = CHECK.first_error("C", "src/norm.c", GOOD, Repository())
    assert error is not None and error.missing_headers == 2


def test_an_unknown_type_from_a_missing_header_is_not_a_parse_error():
    text = "#include <nosuchlib/zz.h>\nint f(void) { zz_stream s; return s.avail_in; }\n"
    error = CHECK.first_error("C", "a.c", text, Repository())
    assert error is not None and not error.parse_error and error.missing_headers == 1, error


def test_a_header_is_judged_inside_the_file_that_includes_it():
    part = "API int f(void);\n"
    repo = Repository({"inc/all.h": '#pragma once\n#define API extern\n#include "part.h"\n', "inc/part.h": part})
    alone = CHECK.first_error("C", "inc/part.h", part, Repository({"inc/part.h": part}))
    assert alone is not None and alone.parse_error  # API unknown: "expected ... before 'int'"
    assert CHECK.first_error("C", "inc/part.h", part, repo) is None  # inside all.h, API is defined
    error = CHECK.first_error("C", "inc/part.h", "API int f(void) f;\n", repo)
    assert error is not None and error.parse_error and error.line == 1


def test_an_includer_that_never_opens_the_header_decides_nothing():
    part = "API int f(void);\n"
    repo = Repository({"inc/all.h": '#define API extern\n#if 0\n#include "part.h"\n#endif\n', "inc/part.h": part})
    error = CHECK.first_error("C", "inc/part.h", part, repo)
    assert error is not None and error.parse_error  # the header alone: API unknown, a parse error


def test_a_c_header_that_is_cpp_is_compiled_as_cpp():
    text = "template <typename T>\nT id(T v) { return v; }\n"
    as_c = CHECK._compile("C", "include/id.h", text, Repository())
    assert as_c is not None and as_c.parse_error  # C cannot parse a template
    assert CHECK.first_error("C", "include/id.h", text, Repository()) is None
    error = CHECK.first_error("C", "include/id.h", text.replace("return v;", "return v v;"), Repository())
    assert error is not None and error.parse_error and error.language == "C++" and error.line == 2


def test_includes_that_cannot_be_placed_give_no_verdict():
    assert CHECK.first_error("C", "a.c", '#include "../../outside.h"\nint x\n', Repository()) is None


def test_a_compiler_past_its_time_gives_no_verdict(tmp_path):
    slow = tmp_path / "slow-cc"
    slow.write_text("#!/bin/sh\nsleep 10\n")
    slow.chmod(0o755)
    assert CompileCheck(str(slow), timeout_s=0.5).first_error("C", "a.c", "int x;\n") is None


def test_a_missing_compiler_is_a_clear_error():
    with pytest.raises(RuntimeError, match="needs `no-such-cc` on PATH"):
        CompileCheck("no-such-cc").require()


def _big(body: str) -> str:
    """``body`` inside a file large enough that one broken line is under the C error-share threshold."""
    filler = "".join(f"static int f{i}(int a) {{\n    return a + {i};\n}}\n" for i in range(60))
    return '#include "lib/api.h"\n' + filler + body


@pytest.mark.parametrize("broken", [
    "EXPORT int g(point p) {\n    return p.x p.y;\n}\n",  # a stray token
    "EXPORT int g(point p) {\n    int s = p.x;\n    s += p.y\n    return s;\n}\n",  # a lost semicolon
])
def test_the_filter_drops_what_only_the_compiler_sees(broken):
    doc = record("src/g.c", _big(broken))
    without = SyntaxFilter()
    assert without.process(doc).keep  # tree-sitter alone: the error share is under the threshold
    step = SyntaxFilter(compile_check=CHECK)
    step.repository = LIB
    verdict = step.process(doc)
    assert not verdict.keep and verdict.reason == "syntax_error" and "compiler (C)" in verdict.detail
    assert step.take_metrics()["compile_error:C"] == 1


def test_the_filter_keeps_a_file_whose_macros_its_repository_defines():
    doc = record("src/g.c", _big("EXPORT int g(point p) {\n    return p.x + p.y;\n}\n"))
    step = SyntaxFilter(compile_check=CHECK)
    step.repository = LIB
    assert step.process(doc).keep
    assert step.take_metrics()["compiled:C"] == 1


def test_a_compiler_error_tree_sitter_does_not_see_is_not_enough():
    """An unknown macro from a missing header makes gcc fail where tree-sitter parses fine: kept, counted."""
    doc = record("src/g.c", "#include <nosuch/api.h>\nAPI_DATA(int) counter;\nint get(void) { return counter; }\n")
    step = SyntaxFilter(compile_check=CHECK)
    step.repository = Repository()
    verdict = step.process(doc)
    metrics = step.take_metrics()
    assert verdict.keep, verdict
    assert metrics.get("compile_error_unconfirmed:C") == 1, metrics


def test_both_engines_cut_a_repository_context_the_same_way():
    """Spark streams a repository's context rows (path order) into one Repository; the local engine builds it
    with repositories_of. With a byte bound that leaves a file out, both keep the same files and mark the cut."""
    import pyarrow as pa

    from lake.schemas import FILES
    from spark_jobs.filters.base import CONTEXT_FLAG, OUTCOME, PipelineStep, apply_batches_in_context, repositories_of

    rows = [record(p, "x" * n, repo="org/c") for p, n in (("a.h", 40), ("b.h", 100), ("c.h", 50))]
    doc = record("main.c", "int x;\n", repo="org/c")

    class Seen(PipelineStep):
        def process(self, d):
            self.seen = (dict(self.repository.files), self.repository.truncated)
            from spark_jobs.filters.base import KEEP
            return KEEP

    step = Seen()
    batch = pa.RecordBatch.from_pylist([*rows, doc], schema=FILES).append_column(
        CONTEXT_FLAG, pa.array([True, True, True, False]))
    (out,) = apply_batches_in_context(step, iter([batch]), "syntax_filter", 100, 128)
    assert out.schema == OUTCOME and out.num_rows == 1
    local = repositories_of(iter(rows[::-1]), 100)["org/c"]
    assert step.seen == (local.files, local.truncated) == ({"a.h": "x" * 40, "c.h": "x" * 50}, True)


def test_a_computed_include_is_found_in_the_repository_or_stubbed():
    """``#include CONFIG_H`` is invisible to the include scan; gcc's "No such file" names it, and it is looked up
    in the repository (then its own includes) or stubbed, and the compile retried."""
    repo = Repository({"include/cfg/config.h": '#include "types.h"\n#define API extern\n',
                       "include/cfg/types.h": "typedef int handle;\n"})
    text = "#define CONFIG_H <cfg/config.h>\n#include CONFIG_H\nAPI handle open_it(void);\n"
    assert CHECK.first_error("C", "src/a.c", text, repo) is None
    error = CHECK.first_error("C", "src/a.c", text.replace("<cfg/config.h>", "<cfg/other.h>"), repo)
    assert error is not None and error.message == "unknown type name ‘API’" and error.missing_headers == 1


def test_a_header_the_system_also_has_is_judged_as_written(tmp_path):
    """A repository that carries a system header itself (a libc or libstdc++ tree): the document is compiled from
    its own text inside its includer, not replaced by the installed copy."""
    system = tmp_path / "sys"
    (system / "bits").mkdir(parents=True)
    (system / "cfg.h").write_text("#define API extern\n")
    (system / "bits" / "part.h").write_text("API int f(void);\n")
    (system / "all.h").write_text('#include <cfg.h>\n#include <bits/part.h>\n')
    check = CompileCheck(system_include_dirs=(str(system), *CompileCheck()._system_dirs("c")))
    repo = Repository({"include/all.h": (system / "all.h").read_text(), "include/bits/part.h": "API int f(void);\n"})
    assert check.first_error("C", "include/bits/part.h", "API int f(void);\n", repo) is None
    error = check.first_error("C", "include/bits/part.h", "API int f(void) f;\n", repo)
    assert error is not None and error.parse_error and error.line == 1
