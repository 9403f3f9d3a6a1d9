"""The sandbox's typed settings: ``stages.sandbox`` of the profile YAML, and the per-request :class:`Limits`.

Defaults are the local profile's; config/k8s.yaml says what the service runs with. Limit names follow
SandboxFusion's ``run_code`` request (``compile_timeout``, ``run_timeout``, ``memory_limit_MB``) so a reward
function written for it reads ours the same way.
"""

from __future__ import annotations

from pydantic import Field

from lake.config import StrictModel


class Limits(StrictModel):
    """What one program may use. A value of a request overrides the pool's default for that request."""

    # Wall-clock seconds of the compile step (compiled languages) and of each run; the whole process tree is
    # killed (SIGKILL) when a step overruns.
    compile_timeout: float = Field(10.0, gt=0, le=600)
    run_timeout: float = Field(10.0, gt=0, le=600)
    # Memory a program may allocate (RLIMIT_DATA: heap and private mappings), per process; -1: the pool default.
    memory_limit_MB: int = Field(1024, ge=-1, le=65536)
    # Processes and threads of the run, together (RLIMIT_NPROC of the slot's own uid). JVMs and Go start
    # threads of their own: each language adds its runtime's share (languages.py).
    max_processes: int = Field(32, ge=1, le=4096)
    # Largest file the program may write, and how many files it may have open.
    max_file_size_MB: int = Field(16, ge=0, le=4096)
    max_open_files: int = Field(256, ge=8, le=65536)
    # Size of the private writable temp dir (a tmpfs: the only writable place inside).
    tmp_size_MB: int = Field(64, ge=1, le=4096)
    # Bytes of stdout and of stderr kept; a program that writes more is killed (status output_limit).
    max_output_bytes: int = Field(1 << 20, ge=1024, le=1 << 28)


class SandboxConfig(StrictModel):
    """``stages.sandbox``: the worker pool and how programs are isolated."""

    # Programs run at once (one per slot, each slot with its own uid); None: the machine's CPU count.
    workers: int | None = Field(None, ge=1, le=1024)
    # Slot i runs as uid and gid ``uid_base + i``: an id no account of the host (or image) uses, so the
    # process limit counts only that slot's programs and a sweep by uid finds everything a run left behind.
    uid_base: int = Field(61000, ge=1000, le=2**31 - 2**16)
    # Fail closed: the pool refuses to start when the isolation (user/mount/pid/net namespaces, uid switch)
    # cannot be set up. True runs programs with rlimits (and the uid switch when root) but no namespaces:
    # they then see the host's files and network. Only for trusted code on machines without bubblewrap.
    allow_degraded: bool = False
    # The tools (looked up on PATH unless absolute).
    bwrap: str = "bwrap"
    setpriv: str = "setpriv"
    prlimit: str = "prlimit"
    # Host directories visible read-only inside the sandbox (toolchains); missing ones are skipped. Nothing
    # else of the host exists inside: no home, no checkout, no /etc beyond these.
    ro_paths: tuple[str, ...] = ("/usr", "/etc/alternatives", "/etc/java-17-openjdk", "/etc/ld.so.cache",
                                 "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/ssl/certs")
    # PATH inside the sandbox.
    path: str = "/usr/local/bin:/usr/bin:/bin"
    # Where compiled programs wait between their compile and run steps (a fresh directory per run, removed
    # after it); None: $TMPDIR/seedcoder-sandbox.
    scratch_dir: str | None = None
    # Default limits of requests that give none.
    limits: Limits = Limits()
    # HTTP service (python -m training.sandbox serve): address and port. Loopback by default: the sandbox
    # service must not be reachable from outside the pod or host unless a NetworkPolicy fronts it.
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
