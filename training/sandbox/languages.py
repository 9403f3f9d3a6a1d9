"""How each language is compiled and run inside the sandbox, and what its runtime needs on top of the program.

Paths are the sandbox's (see isolation.py): the source under ``/sandbox`` (read-only), compiled output in
``/build`` (writable only while compiling), the work dir ``/tmp/work``. The memory limit is RLIMIT_DATA for every
language: JVMs, V8 and Go reserve large address ranges they never touch, which an address-space limit would
refuse, while RLIMIT_DATA counts what is actually made writable. The address-space limit is therefore tight
for Python and C++ (memory + slack for libraries and stacks) and only a backstop for the managed runtimes.
Their own threads count against the process limit, so each language adds its runtime's share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from training.sandbox.config import Limits
from training.sandbox.isolation import BUILD_DIR, DATA_DIR, StepLimits

# What a compiler may use, whatever the request says about the program (compilers are big, and trusted).
COMPILE_MEMORY_MB = 2048
COMPILE_PROCESSES = 128
COMPILE_TMP_MB = 512
COMPILE_FILE_MB = 256


@dataclass(frozen=True)
class Recipe:
    name: str
    # File name of the program inside /sandbox.
    source: str
    # Compile command (None: interpreted), and the run command.
    compile: tuple[str, ...] | None
    run: tuple[str, ...]
    # Environment of both steps.
    env: dict[str, str] = field(default_factory=dict)
    # Threads the runtime starts by itself (added to max_processes).
    runtime_threads: int = 0
    # Address-space limit: memory + this slack (MB); None: only the backstop.
    address_slack_MB: int | None = 512
    # Data beyond the program's own heap that the runtime needs (JVM metaspace and code cache, V8's
    # non-heap spaces): the heap flag gets the memory limit, RLIMIT_DATA the limit plus this.
    data_slack_MB: int = 0

    def run_argv(self, memory_MB: int, main_class: str = "Main") -> list[str]:
        return [a.format(memory_MB=memory_MB, main_class=main_class) for a in self.run]


ADDRESS_BACKSTOP_MB = 64 * 1024

RECIPES: dict[str, Recipe] = {
    "python": Recipe("python", "main.py", None, ("python3", "-B", f"{DATA_DIR}/main.py"), address_slack_MB=1024),
    "cpp": Recipe("cpp", "main.cpp",
                  ("g++", "-std=c++17", "-O2", "-pipe", "-o", f"{BUILD_DIR}/main", f"{DATA_DIR}/main.cpp"),
                  (f"{BUILD_DIR}/main",), address_slack_MB=512),
    # javac writes one .class per class into /build; the JVM runs with a heap below the data limit, the serial
    # collector and C1 only (few threads, quick start), and no perf-data file.
    "java": Recipe("java", "Main.java",
                   ("javac", "-J-Xmx512m", "-J-XX:+UseSerialGC", "-encoding", "UTF-8", "-d", BUILD_DIR,
                    f"{DATA_DIR}/Main.java"),
                   ("java", "-Xmx{memory_MB}m", "-Xss16m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    "-XX:-UsePerfData", "-XX:CICompilerCount=1", "-cp", BUILD_DIR, "{main_class}"),
                   runtime_threads=24, address_slack_MB=None, data_slack_MB=512),
    "nodejs": Recipe("nodejs", "main.js", None,
                     ("node", "--max-old-space-size={memory_MB}", "--v8-pool-size=1", f"{DATA_DIR}/main.js"),
                     runtime_threads=16, address_slack_MB=None, data_slack_MB=256),
    "go": Recipe("go", "main.go",
                 ("go", "build", "-o", f"{BUILD_DIR}/main", f"{DATA_DIR}/main.go"), (f"{BUILD_DIR}/main",),
                 env={"GOCACHE": "/tmp/gocache", "GOPATH": "/tmp/gopath", "GO111MODULE": "off", "CGO_ENABLED": "0",
                      "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"},
                 runtime_threads=16, address_slack_MB=None),
}

HARNESS = "python_harness.py"


@cache
def harness_source() -> bytes:
    return resources.files("training.sandbox").joinpath("harness", HARNESS).read_bytes()


def recipe(language: str) -> Recipe:
    try:
        return RECIPES[language]
    except KeyError:
        raise ValueError(f"language {language!r} is not supported; use one of {sorted(RECIPES)}") from None


_JAVA_PUBLIC_CLASS = re.compile(r"^\s*public\s+(?:final\s+|abstract\s+)*class\s+([A-Za-z_$][\w$]*)", re.M)


def java_main_class(code: str) -> str:
    """The class ``java`` runs: the public class of the file (javac requires the file to be named after it).

    >>> java_main_class("import java.util.*;\\npublic class Solution { public static void main(String[] a) {} }")
    'Solution'
    >>> java_main_class("class Main { }")
    'Main'
    """
    match = _JAVA_PUBLIC_CLASS.search(code)
    return match.group(1) if match else "Main"


def program_memory_MB(limits: Limits, default_memory_MB: int) -> int:
    return limits.memory_limit_MB if limits.memory_limit_MB > 0 else default_memory_MB


def run_limits(recipe: Recipe, limits: Limits, default_memory_MB: int) -> StepLimits:
    memory = program_memory_MB(limits, default_memory_MB)
    slack = recipe.address_slack_MB
    return StepLimits(cpu_seconds=int(limits.run_timeout) + 1, memory_MB=memory + recipe.data_slack_MB,
                      address_space_MB=memory + slack if slack is not None else ADDRESS_BACKSTOP_MB,
                      processes=limits.max_processes + recipe.runtime_threads,
                      file_size_MB=limits.max_file_size_MB, open_files=limits.max_open_files,
                      tmp_size_MB=limits.tmp_size_MB)


def compile_limits(limits: Limits) -> StepLimits:
    return StepLimits(cpu_seconds=int(limits.compile_timeout) * 2 + 1, memory_MB=COMPILE_MEMORY_MB,
                      address_space_MB=ADDRESS_BACKSTOP_MB, processes=COMPILE_PROCESSES,
                      file_size_MB=COMPILE_FILE_MB, open_files=1024, tmp_size_MB=COMPILE_TMP_MB)
