"""Language identification: the 89 languages, extensions, well-known names, and a loadable grammar for each."""

from collections import Counter

import pytest

from lake.languages import BY_NAME, LANGUAGES, detect, grammar_of, language_of


def test_eighty_nine_unique_languages_of_every_kind():
    assert len(LANGUAGES) == 89 == len(BY_NAME)
    assert {lang.kind for lang in LANGUAGES} == {"code", "data", "markup", "config"}
    for name in ("JSON", "YAML", "Markdown", "TeX", "HTML"):  # the data/markup formats the report names
        assert name in BY_NAME


def test_no_extension_or_file_name_claimed_twice():
    exts = Counter(ext for lang in LANGUAGES for ext in lang.extensions)
    names = Counter(fn for lang in LANGUAGES for fn in lang.filenames)
    assert [e for e, n in exts.items() if n > 1] == []
    assert [f for f, n in names.items() if n > 1] == []


def test_every_grammar_is_bundled_in_the_language_pack():
    from tree_sitter_language_pack import get_parser

    for lang in LANGUAGES:
        if lang.grammar:
            assert get_parser(lang.grammar).parse(b"\n").root_node is not None, lang.name
    assert grammar_of("Python") == "python" and grammar_of("Batchfile") is None and grammar_of("Nope") is None


@pytest.mark.parametrize("path,language", [
    ("src/app/main.py", "Python"), ("pkg/types.pyi", "Python"), ("lib/a.mjs", "JavaScript"),
    ("include/stdio.h", "C"), ("src/x.cc", "C++"), ("k.cu", "CUDA"), ("a.tsx", "TSX"), ("conf.yml", "YAML"),
    ("README.md", "Markdown"), ("paper.tex", "TeX"), ("index.html", "HTML"), ("nb.ipynb", "JSON"),
    ("main.tf", "HCL"), ("Makefile", "Makefile"), ("sub/makefile", "Makefile"), ("Makefile.am", "Makefile"),
    ("Kbuild", "Makefile"), ("Dockerfile", "Dockerfile"), ("docker/Dockerfile.dev", "Dockerfile"),
    ("build.Dockerfile", "Dockerfile"), ("CMakeLists.txt", "CMake"), ("Jenkinsfile", "Groovy"),
    ("Vagrantfile", "Ruby"), ("Gemfile", "Ruby"), ("config.ru", "Ruby"), ("home/.bashrc", "Shell"),
    ("PKGBUILD", "Shell"), ("BUILD.bazel", "Starlark"), ("MODULE.bazel", "Starlark"), ("SConstruct", "Python"),
    (".vimrc", "Vim Script"), (".emacs", "Emacs Lisp"), (".editorconfig", "INI"), (".eslintrc", "JSON"),
    (".clang-format", "YAML"), ("Cargo.lock", "TOML"), ("poetry.lock", "TOML"), ("composer.lock", "JSON"),
    ("Makefile.PL", "Perl"), ("A.PY", "Python"), ("x.R", "R"), ("boot.S", "Assembly"),
])
def test_known_paths(path, language):
    assert language_of(path) == language


@pytest.mark.parametrize("path", ["logo.png", "LICENSE", "notes.txt", ".gitignore", "archive.tar.gz", "noext",
                                  "", "dir/", "weird.", "x.PNG"])
def test_unknown_paths_have_no_language(path):
    assert language_of(path) is None and detect(path) is None
