"""The crawl stage over a local source with hostile files: every refusal has a reason, nothing else is lost."""

import json
import os

import pytest

from lake.stage import Lake
from spark_jobs.crawl.__main__ import main as crawl_main

pytestmark = pytest.mark.spark


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "source"
    repo = root / "alpha"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("def f(x):\n    return x + 1\n")
    (repo / "pkg" / "util.js").write_text("export const g = (a) => a * 2;\n")
    (repo / "README.md").write_text("# alpha\n")
    (repo / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (repo / "blob.py").write_bytes(b"x = 1\x00\x00\x00binary")
    (repo / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (repo / "big.py").write_text("x = 1\n" * 400)
    (repo / "node_modules" / "dep").mkdir(parents=True)
    (repo / "node_modules" / "dep" / "index.js").write_text("module.exports = 1;\n")
    os.symlink("/etc/passwd", repo / "passwd.py")
    os.symlink("/etc", repo / "etc_dir")
    os.mkfifo(repo / "pipe.py")
    (repo / ".repo.json").write_text(json.dumps({"repo": "acme/alpha", "stars": 7, "forks": 2, "license": "MIT",
                                                 "created_at": "2020-01-02T03:04:05Z"}))
    # A file name that is not UTF-8: os.walk hands it over with lone surrogates, which no record can store.
    (repo / os.fsdecode(b"caf\xe9.py")).write_text("x = 1\n")
    beta = root / "beta"
    beta.mkdir()
    (beta / "main.go").write_text("package main\n\nfunc main() {}\n")
    (beta / ".repo.json").write_text("{not json")
    return root


def test_crawl_local_records_and_reasons(source, make_config, tmp_path, spark):
    cfg = make_config(stages={"crawl": {"source": "local", "local_root": str(source),
                                        "rules": {"max_file_bytes": 1000}}})
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(cfg.model_dump(exclude={"source_path"})))
    assert crawl_main(["--snapshot", "t1", "--config", str(path)]) == 0
    lake = Lake.at(cfg.lake_root())
    files = {r["path"]: r for r in lake.read_table("t1", "crawl", "files").to_pylist()}
    assert set(files) == {"pkg/mod.py", "pkg/util.js", "README.md", "main.go"}
    mod = files["pkg/mod.py"]
    assert (mod["repo"], mod["language"], mod["license"], mod["stars"], mod["forks"]) == \
        ("acme/alpha", "Python", "MIT", 7, 2)
    assert mod["repo_created_at"].year == 2020 and mod["num_lines"] == 2
    assert files["main.go"]["repo"] == "beta" and files["main.go"]["stars"] == 0
    rejects = {(r["repo"], r["path"]): r["reason"] for r in lake.read_table("t1", "crawl", "rejects").to_pylist()}
    assert rejects == {
        ("acme/alpha", "image.png"): "unknown_language",
        ("acme/alpha", "blob.py"): "binary",
        ("acme/alpha", "latin1.py"): "undecodable",
        ("acme/alpha", "big.py"): "oversize",
        ("acme/alpha", "node_modules/dep/index.js"): "vendored",
        ("acme/alpha", "passwd.py"): "symlink",
        ("acme/alpha", "etc_dir"): "symlink",
        ("acme/alpha", "pipe.py"): "special_file",
        ("beta", ".repo.json"): "bad_metadata",
        ("acme/alpha", "caf\ufffd.py"): "invalid_path",
    }
    stats = lake.stats("t1", "crawl")
    assert stats["records_out"] == 4 and stats["records_in"] == 4 + len(rejects)
    assert stats["drop_reasons"]["symlink"] == 2
    repos = {r["repo"]: r for r in lake.read_table("t1", "crawl", "repos").to_pylist()}
    assert repos["acme/alpha"]["num_files"] == 3 and len(repos["acme/alpha"]["commit"]) == 40


def test_crawl_missing_source_is_a_clear_error(make_config, tmp_path, capsys):
    cfg = make_config(stages={"crawl": {"local_root": str(tmp_path / "nowhere")}})
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(cfg.model_dump(exclude={"source_path"})))
    assert crawl_main(["--snapshot", "t1", "--config", str(path)]) == 2
    assert Lake.at(cfg.lake_root()).commit_info("t1", "crawl") is None


def test_a_poisoned_file_and_a_poisoned_repository_are_rejects(source, monkeypatch):
    """crawl_repository (the flatMap body): one file whose decision raises, then a repository that raises."""
    from spark_jobs.crawl import local_source
    from spark_jobs.crawl.file_rules import FileRules

    real = local_source.classify

    def poison(path, data, rules):
        if path == "pkg/mod.py":
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, data, rules)

    monkeypatch.setattr(local_source, "classify", poison)
    records = local_source.crawl_repository(str(source / "alpha"), FileRules().model_dump_json())
    files = {r[1][3] for r in records if r[0] == "file"}
    assert files == {"pkg/util.js", "README.md", "big.py"}, "the other files are all there"
    rejects = {r[1][1]: (r[1][2], r[1][3]) for r in records if r[0] == "reject"}
    assert rejects["pkg/mod.py"] == ("crawl_error", "RecursionError: maximum recursion depth exceeded")
    assert [r[0] for r in records].count("repo") == 1

    monkeypatch.setattr(local_source, "read_meta", lambda d: 1 / 0)
    assert local_source.crawl_repository(str(source / "beta"), FileRules().model_dump_json()) == [
        ("reject", ("beta", "", "crawl_error", "ZeroDivisionError: division by zero", None))]
