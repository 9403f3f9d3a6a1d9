"""Language identification from the file name, for the 89 languages of the corpus.

The Seed-Coder report infers the language from the file extension over 89 languages, data and markup formats
included, but does not publish its list. Ours takes the languages of The Stack v2 / GitHub Linguist that have
meaningful code volume, plus the data and markup formats the report names (JSON, YAML, Markdown, TeX, HTML...).
Each entry: extensions, well-known file names, and the tree-sitter grammar (from tree-sitter-language-pack)
used by the syntax filter, or None where no grammar is bundled. A well-known file name (Makefile, Dockerfile,
Jenkinsfile, .bashrc, Cargo.lock...) wins over the extension, so ``Makefile.am`` is Make and ``CMakeLists.txt``
is CMake; lock files get their format's language so that the rule filter drops them with its own reason.

>>> language_of("src/app/main.py"), language_of("Makefile"), language_of("a/b/Dockerfile.dev")
('Python', 'Makefile', 'Dockerfile')
>>> language_of("logo.png") is None
True
>>> len(LANGUAGES)
89
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Language:
    name: str
    extensions: tuple[str, ...]
    filenames: tuple[str, ...] = ()
    grammar: str | None = None
    kind: str = "code"  # code | data | markup | config


def _l(name, exts, grammar=None, filenames=(), kind="code"):
    return Language(name, tuple(exts.split()), tuple(filenames), grammar, kind)


LANGUAGES: tuple[Language, ...] = (
    _l("Ada", ".adb .ads", "ada"),
    _l("Agda", ".agda", "agda"),
    _l("Assembly", ".asm .s .S .nasm", "asm"),
    _l("Batchfile", ".bat .cmd"),
    _l("C", ".c .h", "c"),
    _l("C#", ".cs .csx", "csharp"),
    _l("C++", ".cpp .cc .cxx .c++ .hpp .hh .hxx .h++ .ipp .tpp .inl", "cpp"),
    _l("Clojure", ".clj .cljs .cljc .edn", "clojure"),
    _l("CMake", ".cmake", "cmake", ("CMakeLists.txt",)),
    _l("COBOL", ".cob .cbl .cpy", "cobol"),
    _l("CoffeeScript", ".coffee"),
    _l("Common Lisp", ".lisp .lsp .cl", "commonlisp"),
    _l("Crystal", ".cr"),
    _l("CSS", ".css", "css", kind="markup"),
    _l("CSV", ".csv", "csv", kind="data"),
    _l("CUDA", ".cu .cuh", "cuda"),
    _l("Cython", ".pyx .pxd .pxi"),
    _l("D", ".d", "d"),
    _l("Dart", ".dart", "dart"),
    _l("Dockerfile", ".dockerfile", "dockerfile", ("Dockerfile", "dockerfile", "Containerfile"), kind="config"),
    _l("Elixir", ".ex .exs", "elixir"),
    _l("Elm", ".elm", "elm"),
    _l("Emacs Lisp", ".el", "elisp", (".emacs", "_emacs", "Cask")),
    _l("Erlang", ".erl .hrl", "erlang"),
    _l("F#", ".fs .fsi .fsx", "fsharp"),
    _l("Fortran", ".f .f90 .f95 .f03 .f08 .for", "fortran"),
    _l("GDScript", ".gd", "gdscript"),
    _l("GLSL", ".glsl .vert .frag .geom", "glsl"),
    _l("Go", ".go", "go"),
    _l("GraphQL", ".graphql .gql", "graphql"),
    _l("Groovy", ".groovy .gradle", "groovy", ("Jenkinsfile",)),
    _l("Hack", ".hack", "hack"),
    _l("Haskell", ".hs .lhs", "haskell"),
    _l("HCL", ".hcl .tf .tfvars", "hcl", kind="config"),
    _l("HLSL", ".hlsl", "hlsl"),
    _l("HTML", ".html .htm .xhtml", "html", kind="markup"),
    _l("INI", ".ini .cfg .conf", "ini", (".editorconfig", ".gitconfig", ".pylintrc", "pylintrc", ".flake8", ".coveragerc",
                                     ".npmrc", ".pypirc"), kind="config"),
    _l("Java", ".java", "java"),
    _l("JavaScript", ".js .mjs .cjs .jsx", "javascript"),
    _l("JSON", ".json .jsonc .json5 .ipynb", "json", (".babelrc", ".eslintrc", ".jshintrc", ".prettierrc", ".swcrc",
                                                  "composer.lock", "Pipfile.lock", "flake.lock"), kind="data"),
    _l("Julia", ".jl", "julia"),
    _l("Haxe", ".hx", "haxe"),
    _l("Kotlin", ".kt .kts", "kotlin"),
    _l("Less", ".less", kind="markup"),
    _l("Lua", ".lua", "lua"),
    _l("Makefile", ".mk .mak", "make", ("Makefile", "makefile", "GNUmakefile", "BSDmakefile", "Kbuild", "Makefile.am",
                                   "Makefile.in"), kind="config"),
    _l("Markdown", ".md .markdown .mdx", "markdown", ("README",), kind="markup"),
    _l("MATLAB", ".m .mlx", "matlab"),
    _l("Nim", ".nim", "nim"),
    _l("Nix", ".nix", "nix"),
    _l("Objective-C", ".mm", "objc"),
    _l("OCaml", ".ml .mli", "ocaml"),
    _l("Pascal", ".pas .pp .dpr", "pascal"),
    _l("Perl", ".pl .pm .t", "perl", ("cpanfile", "Makefile.PL")),
    _l("PHP", ".php .phtml", "php"),
    _l("PowerShell", ".ps1 .psm1 .psd1", "powershell"),
    _l("Prolog", ".pro .prolog"),
    _l("Protocol Buffer", ".proto", "proto", kind="data"),
    _l("Python", ".py .pyi .pyw", "python", ("SConstruct", "SConscript", "wscript", ".pythonrc")),
    _l("R", ".r .R .Rmd", "r", (".Rprofile",)),
    _l("Racket", ".rkt", "racket"),
    _l("reStructuredText", ".rst", "rst", kind="markup"),
    _l("Ruby", ".rb .rake .gemspec .ru", "ruby", ("Rakefile", "Gemfile", "Vagrantfile", "Podfile", "Brewfile", "Guardfile",
                                            "Fastfile", "Appfile", "Berksfile", "Capfile", "Dangerfile", "Thorfile",
                                            ".irbrc", ".pryrc")),
    _l("Rust", ".rs", "rust"),
    _l("Sass", ".sass .scss", "scss", kind="markup"),
    _l("Scala", ".scala .sc", "scala"),
    _l("Scheme", ".scm .ss", "scheme"),
    _l("Shell", ".sh .bash .zsh .ksh", "bash", (".bashrc", ".bash_profile", ".bash_logout", ".bash_aliases", ".profile",
                                           ".zshrc", ".zshenv", ".zprofile", ".zlogin", "PKGBUILD", "APKBUILD")),
    _l("Smalltalk", ".st"),
    _l("Solidity", ".sol", "solidity"),
    _l("SQL", ".sql .psql .ddl", "sql"),
    _l("Starlark", ".bzl .star", "starlark", ("BUILD", "BUILD.bazel", "WORKSPACE", "WORKSPACE.bazel", "MODULE.bazel",
                                          "Tiltfile")),
    _l("Svelte", ".svelte", "svelte", kind="markup"),
    _l("Swift", ".swift", "swift"),
    _l("SystemVerilog", ".sv .svh", "verilog"),
    _l("Tcl", ".tcl .tk", "tcl"),
    _l("TeX", ".tex .sty .cls .bib", "latex", kind="markup"),
    _l("Thrift", ".thrift", "thrift", kind="data"),
    _l("TOML", ".toml", "toml", ("Cargo.lock", "Pipfile", "poetry.lock", "uv.lock", "pdm.lock"), kind="config"),
    _l("TSX", ".tsx", "tsx"),
    _l("TypeScript", ".ts .mts .cts", "typescript"),
    _l("Verilog", ".v .vh", "verilog"),
    _l("VHDL", ".vhd .vhdl", "vhdl"),
    _l("Vim Script", ".vim", "vim", (".vimrc", ".gvimrc", "_vimrc")),
    _l("Visual Basic", ".vb .vbs .bas"),
    _l("Vue", ".vue", "vue", kind="markup"),
    _l("XML", ".xml .xsd .xsl .xslt .svg .plist .csproj .pom", "xml", kind="markup"),
    _l("YAML", ".yaml .yml", "yaml", (".clang-format", ".clang-tidy", ".gemrc", "yarn.lock"), kind="config"),
    _l("Zig", ".zig", "zig"),
)

BY_NAME = {lang.name: lang for lang in LANGUAGES}
_BY_EXT = {ext: lang for lang in LANGUAGES for ext in lang.extensions}
_BY_EXT_LOWER = {ext.lower(): lang for lang in reversed(LANGUAGES) for ext in lang.extensions}
_BY_FILENAME = {fn: lang for lang in LANGUAGES for fn in lang.filenames}


def detect(path: str) -> Language | None:
    """The language of a repository path, or None when the name says nothing we know."""
    name = PurePosixPath(path).name
    if name in _BY_FILENAME:
        return _BY_FILENAME[name]
    if name.startswith(("Dockerfile.", "Containerfile.")):
        return BY_NAME["Dockerfile"]
    suffix = PurePosixPath(name).suffix
    if not suffix:
        return None
    return _BY_EXT.get(suffix) or _BY_EXT_LOWER.get(suffix.lower())


def language_of(path: str) -> str | None:
    lang = detect(path)
    return lang.name if lang else None


def grammar_of(language: str) -> str | None:
    """The tree-sitter-language-pack grammar name of a language, if one is bundled."""
    lang = BY_NAME.get(language)
    return lang.grammar if lang else None
