"""How one step of a program is isolated: the exact command line, and the check that it works.

A step runs as ``prlimit ... -- setpriv ... -- bwrap ... -- COMMAND``:

- ``prlimit`` sets the rlimits: CPU seconds, address space, data (the memory limit), processes + threads of
  the uid, file size, open files, no core files;
- ``setpriv`` switches to the slot's own uid/gid (never root), clears supplementary groups, empties the
  inheritable and bounding capability sets and sets ``no_new_privs``;
- ``bwrap`` (bubblewrap, unprivileged: it creates a user namespace) gives the program new user, mount, pid,
  network, IPC, UTS and cgroup namespaces, forbids further user namespaces, drops every capability, starts a
  new session (no terminal injection), clears the environment, and builds a root of its own: the toolchains
  read-only (``ro_paths``), a fresh ``/proc`` and minimal ``/dev``, the program's files read-only under
  ``/sandbox``, a size-limited tmpfs at ``/tmp`` (the only writable place; the work dir is ``/tmp/work``), then
  remounts that root read-only. Only loopback exists in the network namespace, so nothing can be reached. The
  program is PID 1 of its namespace: when it ends, the kernel kills everything it left behind, and bwrap
  kills it if the host side dies.

The host also sweeps by uid after every step (nothing of the slot's uid may outlive a step), so a process that
escaped the namespace teardown would still be found. :meth:`Isolation.probe` runs a check program inside
and verifies each property before the pool accepts work: if any is missing the pool refuses to start (fail
closed), unless ``allow_degraded`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from training.sandbox.config import SandboxConfig

log = logging.getLogger(__name__)

WORK_DIR = "/tmp/work"
BUILD_DIR = "/build"
DATA_DIR = "/sandbox"


class SandboxUnavailable(RuntimeError):
    """The isolation cannot be set up here, and degraded mode was not allowed."""


@dataclass(frozen=True)
class StepLimits:
    """The rlimits of one step (already resolved for the language)."""

    cpu_seconds: int
    memory_MB: int
    address_space_MB: int | None
    processes: int
    file_size_MB: int
    open_files: int
    tmp_size_MB: int


@dataclass
class Step:
    """One command inside the sandbox."""

    argv: list[str]
    limits: StepLimits
    # In-sandbox path -> contents; ``/sandbox/...`` paths are read-only, ``/tmp/work/...`` writable.
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # Host directory mounted at /build: writable for a compile step, read-only for the run.
    build_dir: Path | None = None
    build_writable: bool = False
    # File descriptors (already open in this process) the command inherits.
    pass_fds: tuple[int, ...] = ()


def _tool(name: str) -> str:
    path = shutil.which(name) if not os.path.isabs(name) else name
    if not path or not os.access(path, os.X_OK):
        raise SandboxUnavailable(f"{name} is not installed (apt-get install bubblewrap util-linux)")
    return path


class Isolation:
    """Builds the command lines of :class:`Step` for a slot, in full or degraded mode."""

    def __init__(self, cfg: SandboxConfig):
        self.cfg = cfg
        self.degraded = False
        self.is_root = os.geteuid() == 0
        self.ro_paths = [p for p in cfg.ro_paths if os.path.exists(p)]
        self.usr_merged = all(os.path.islink(p) for p in ("/bin", "/lib"))
        self._tools: dict[str, str] = {}

    def tool(self, name: str) -> str:
        if name not in self._tools:
            self._tools[name] = _tool(name)
        return self._tools[name]

    def uid(self, slot: int) -> int:
        return self.cfg.uid_base + slot if self.is_root else os.geteuid()

    # -- command lines -------------------------------------------------------------------------------------
    def command(self, step: Step, slot: int, host_root: Path | None = None) -> tuple[list[str], list[int]]:
        """The argv and the memfds it reads its files from (the caller closes them after the spawn).

        ``host_root``: a fresh host directory, needed (and used) only in degraded mode."""
        lim = step.limits
        rlimits = [f"--cpu={lim.cpu_seconds}:{lim.cpu_seconds + 1}", f"--data={lim.memory_MB << 20}",
                   f"--nproc={lim.processes}", f"--fsize={lim.file_size_MB << 20}",
                   f"--nofile={lim.open_files}", "--core=0"]
        if lim.address_space_MB is not None:
            rlimits.append(f"--as={lim.address_space_MB << 20}")
        argv = [self.tool(self.cfg.prlimit), *rlimits, "--"]
        uid = self.uid(slot)
        if self.is_root:
            argv += [self.tool(self.cfg.setpriv), f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        memfds: list[int] = []
        if self.degraded:
            return self._degraded(argv, step, host_root), memfds
        env = {"PATH": self.cfg.path, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", **step.env}
        argv += [self.tool(self.cfg.bwrap), "--unshare-all", "--unshare-user", "--disable-userns",
                 "--die-with-parent", "--new-session", "--as-pid-1", "--hostname", "sandbox", "--clearenv"]
        for key, value in sorted(env.items()):
            argv += ["--setenv", key, value]
        for path in self.ro_paths:
            argv += ["--ro-bind", path, path]
        if self.usr_merged:
            argv += ["--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/sbin", "/sbin"]
            if os.path.islink("/lib64"):
                argv += ["--symlink", "usr/lib64", "/lib64"]
        else:
            for path in ("/bin", "/lib", "/lib64", "/sbin"):
                if os.path.exists(path):
                    argv += ["--ro-bind", path, path]
        argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(lim.tmp_size_MB << 20), "--tmpfs", "/tmp",
                 "--dir", WORK_DIR]
        passwd = f"root:x:0:0::/:/sbin/nologin\nsandbox:x:{uid}:{uid}::/tmp:/sbin/nologin\n"
        group = f"root:x:0:\nsandbox:x:{uid}:\n"
        for path, data in (("/etc/passwd", passwd.encode()), ("/etc/group", group.encode()),
                           *sorted(step.files.items())):
            fd = os.memfd_create("sandbox-file", os.MFD_CLOEXEC)
            memfds.append(fd)
            os.write(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
            os.set_inheritable(fd, True)
            writable = path.startswith(WORK_DIR + "/")
            argv += ["--perms", "0644" if writable else "0444", "--file", str(fd), path]
        if step.build_dir is not None:
            argv += ["--bind" if step.build_writable else "--ro-bind", str(step.build_dir), BUILD_DIR]
        argv += ["--remount-ro", "/", "--chdir", WORK_DIR, "--", *step.argv]
        return argv, memfds

    def _degraded(self, argv: list[str], step: Step, host_root: Path | None) -> list[str]:
        """No namespaces: rlimits and (as root) the uid switch only; the program sees the host's files and
        network. The step's in-sandbox paths are laid out under ``host_root`` and rewritten in its argv."""
        if host_root is None:
            raise ValueError("degraded mode needs a host directory for the step's files")
        for path, data in step.files.items():
            target = host_root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (host_root / WORK_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        if self.is_root:
            subprocess.run(["chown", "-R", f"{self.uid(0)}:{self.uid(0)}", str(host_root / "tmp")], check=True)
        mapping = [(DATA_DIR, str(host_root / DATA_DIR.lstrip("/"))), (WORK_DIR, str(host_root / WORK_DIR.lstrip("/")))]
        if step.build_dir is not None:
            mapping.append((BUILD_DIR, str(step.build_dir)))

        def translate(text: str) -> str:
            for inside, outside in mapping:
                text = text.replace(inside, outside)
            return text

        env = {"PATH": self.cfg.path, "HOME": translate(WORK_DIR), "TMPDIR": translate(WORK_DIR),
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
               "SEEDCODER_DATA_DIR": translate(DATA_DIR), **{k: translate(v) for k, v in step.env.items()}}
        return [*argv, "env", "-i", *(f"{k}={v}" for k, v in sorted(env.items())),
                *(translate(a) for a in step.argv)]

    # -- the fail-closed check -----------------------------------------------------------------------------
    def probe(self) -> dict:
        """Run a check program in a full sandbox and verify the isolation; raises SandboxUnavailable."""
        if not self.is_root:
            raise SandboxUnavailable("the per-slot uid needs root (CAP_SETUID): run the sandbox as root, or "
                                     "set allow_degraded for trusted code only")
        limits = StepLimits(cpu_seconds=10, memory_MB=512, address_space_MB=None, processes=16,
                            file_size_MB=1, open_files=64, tmp_size_MB=4)
        step = Step(argv=["/bin/sh", f"{DATA_DIR}/probe.sh"], limits=limits,
                    files={f"{DATA_DIR}/probe.sh": PROBE_SCRIPT.encode()})
        argv, memfds = self.command(step, slot=0)
        try:
            proc = subprocess.run(argv, pass_fds=memfds, capture_output=True, timeout=60, env={}, cwd="/")
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SandboxUnavailable(f"the sandbox could not start: {err}") from None
        finally:
            for fd in memfds:
                os.close(fd)
        facts = {}
        for line in proc.stdout.decode(errors="replace").splitlines():
            key, _, value = line.partition("=")
            facts[key.strip()] = value.strip()
        problems = [name for name, ok in {
            "runs as the slot's uid (not root)": facts.get("uid") == str(self.uid(0)) and facts.get("uid") != "0",
            "no capabilities": facts.get("capeff") == "0000000000000000",
            "no_new_privs": facts.get("nonewprivs") == "1",
            "own pid namespace (is PID 1)": facts.get("pid") == "1",
            "no network but loopback": facts.get("netdevs") == "lo",
            "read-only root": facts.get("root_writable") == "no",
            "writable /tmp": facts.get("tmp_writable") == "yes",
            "no host home": facts.get("home_visible") == "no",
            "no nested user namespaces": facts.get("userns") == "refused",
        }.items() if not ok]
        if proc.returncode != 0 or problems:
            raise SandboxUnavailable(
                f"isolation check failed (exit {proc.returncode}): missing {problems or 'nothing'}; "
                f"stderr: {proc.stderr.decode(errors='replace')[-600:]}")
        return facts


# The probe: each line "fact=value" (POSIX sh + coreutils only).
PROBE_SCRIPT = r"""
echo "uid=$(id -u)"
echo "capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
echo "nonewprivs=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status)"
echo "pid=$$"
echo "netdevs=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ' | sed 's/ $//')"
if touch /probe-root 2>/dev/null; then echo root_writable=yes; else echo root_writable=no; fi
if touch /tmp/probe 2>/dev/null; then echo tmp_writable=yes; else echo tmp_writable=no; fi
if [ -e /root ] || [ -e /home ]; then echo home_visible=yes; else echo home_visible=no; fi
if unshare --user true 2>/dev/null; then echo userns=allowed; else echo userns=refused; fi
"""


def sweep_uid(uid: int, *, deadline_s: float = 10.0) -> int:
    """SIGKILL every process of ``uid`` until none is left, zombies included (they still count against the
    uid's process limit until reaped); returns how many signals were sent."""
    killed = 0
    end = time.monotonic() + deadline_s
    while True:
        pids = processes_of(uid)
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, 9)
                killed += 1
            except ProcessLookupError:
                pass
        if time.monotonic() > end:
            log.error("processes of sandbox uid %d survive SIGKILL for %.0fs: %s", uid, deadline_s, pids)
            return killed
        time.sleep(0.01)


def processes_of(uids: int | range) -> list[int]:
    """Pids whose real uid is ``uids`` (one uid or a range), read from /proc."""
    wanted = range(uids, uids + 1) if isinstance(uids, int) else uids
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) in wanted:
                            out.append(int(entry.name))
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return out


def json_lines(data: bytes) -> list[dict]:
    """bwrap's --json-status-fd output: one JSON object per line."""
    out = []
    for line in data.decode(errors="replace").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def scratch_root(cfg: SandboxConfig) -> Path:
    root = Path(cfg.scratch_dir or Path(tempfile.gettempdir()) / "seedcoder-sandbox")
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    return root
