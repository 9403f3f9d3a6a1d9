"""Import extraction and resolution per language, on small realistic repositories."""

from __future__ import annotations

from spark_jobs.dataset.imports import RepoPaths, dependencies, dependency_graph, expand_use


def deps(files: dict[str, str], path: str, language: str) -> set[str]:
    return dependencies(path, language, files[path], RepoPaths(files))


def test_python_absolute_relative_and_from_imports():
    files = {
        "src/pkg/__init__.py": "",
        "src/pkg/core.py": "import os\nfrom .util import helper\nfrom . import models\nfrom ..other import x\n",
        "src/pkg/util.py": "import json\n",
        "src/pkg/models/__init__.py": "from pkg.util import helper as h\n",
        "src/other.py": "",
        "tests/test_core.py": "import pkg.core\nfrom pkg import util, missing\nimport numpy as np\n",
    }
    assert deps(files, "src/pkg/core.py", "Python") == {"src/pkg/util.py", "src/pkg/models/__init__.py",
                                                          "src/other.py"}
    assert deps(files, "src/pkg/models/__init__.py", "Python") == {"src/pkg/util.py"}
    assert deps(files, "tests/test_core.py", "Python") == {"src/pkg/core.py", "src/pkg/util.py",
                                                             "src/pkg/__init__.py"}


def test_java_single_wildcard_and_static_imports():
    files = {
        "src/main/java/com/acme/App.java": "package com.acme;\nimport com.acme.util.Strings;\n"
                                           "import static com.acme.util.Numbers.parse;\n"
                                           "import com.acme.model.*;\nimport java.util.List;\nclass App {}\n",
        "src/main/java/com/acme/util/Strings.java": "package com.acme.util;\nclass Strings {}\n",
        "src/main/java/com/acme/util/Numbers.java": "package com.acme.util;\nclass Numbers {}\n",
        "src/main/java/com/acme/model/User.java": "package com.acme.model;\nclass User {}\n",
        "src/main/java/com/acme/model/Role.java": "package com.acme.model;\nclass Role {}\n",
    }
    assert deps(files, "src/main/java/com/acme/App.java", "Java") == {
        "src/main/java/com/acme/util/Strings.java", "src/main/java/com/acme/util/Numbers.java",
        "src/main/java/com/acme/model/User.java", "src/main/java/com/acme/model/Role.java"}


def test_javascript_and_typescript_specifiers():
    files = {
        "web/app.js": "import x from './lib/a.js';\nconst b = require('./lib/b');\nexport * from './lib';\n"
                      "import React from 'react';\nimport('./lazy').then(() => 0);\n",
        "web/lib/a.js": "", "web/lib/b.js": "", "web/lib/index.js": "", "web/lazy.mjs": "",
        "ts/main.ts": "import {T} from './types';\nimport type {U} from '../web/lib/a';\n",
        "ts/types.ts": "", "ts/view.tsx": "import {T} from './types';\nexport const V = () => <div/>;\n",
    }
    assert deps(files, "web/app.js", "JavaScript") == {"web/lib/a.js", "web/lib/b.js", "web/lib/index.js",
                                                        "web/lazy.mjs"}
    assert deps(files, "ts/main.ts", "TypeScript") == {"ts/types.ts", "web/lib/a.js"}
    assert deps(files, "ts/view.tsx", "TSX") == {"ts/types.ts"}


def test_go_packages_by_import_path_suffix():
    files = {
        "cmd/server/main.go": 'package main\nimport (\n "fmt"\n "github.com/acme/svc/internal/store"\n)\n',
        "internal/store/store.go": "package store\n",
        "internal/store/cache.go": "package store\n",
        "internal/store/store_test.go": "package store\n",
    }
    assert deps(files, "cmd/server/main.go", "Go") == {"internal/store/store.go", "internal/store/cache.go"}


def test_c_and_cpp_quoted_includes():
    files = {
        "src/main.c": '#include "util.h"\n#include "core/types.h"\n#include <stdio.h>\nint main(){}\n',
        "src/util.h": "", "include/core/types.h": "",
        "lib/a.cpp": '#include "a.hpp"\n#include <vector>\n', "lib/a.hpp": "",
    }
    assert deps(files, "src/main.c", "C") == {"src/util.h", "include/core/types.h"}
    assert deps(files, "lib/a.cpp", "C++") == {"lib/a.hpp"}


def test_rust_mod_and_use():
    files = {
        "src/main.rs": "mod net;\nmod config;\nuse crate::net::http::{get, post};\nuse std::io;\nfn main(){}\n",
        "src/net/mod.rs": "pub mod http;\nuse super::config::Config;\n",
        "src/net/http.rs": "use self::inner as x;\n",
        "src/config.rs": "",
    }
    assert deps(files, "src/main.rs", "Rust") == {"src/net/mod.rs", "src/config.rs", "src/net/http.rs"}
    assert deps(files, "src/net/mod.rs", "Rust") == {"src/net/http.rs", "src/config.rs"}


def test_rust_use_tree_expansion_with_aliases():
    assert expand_use("crate::a::{b as c, d::*}") == [["crate", "a", "b"], ["crate", "a", "d"]]


def test_unsupported_huge_and_broken_files_add_no_edges():
    files = {"a.md": "see b.py", "big.py": "import b\n" * 10, "b.py": "", "broken.py": "import b\ndef (:\n"}
    graph = dependency_graph({p: (lang, files[p]) for p, lang in
                              [("a.md", "Markdown"), ("big.py", "Python"), ("b.py", "Python"),
                               ("broken.py", "Python")]}, max_parse_bytes=50)
    assert graph == {"a.md": set(), "big.py": set(), "b.py": set(), "broken.py": {"b.py"}}


def test_self_imports_are_not_edges():
    files = {"pkg/__init__.py": "from . import x\nfrom pkg import y\n"}
    assert deps(files, "pkg/__init__.py", "Python") == set()
