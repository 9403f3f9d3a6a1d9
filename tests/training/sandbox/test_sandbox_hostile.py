"""Hostile programs: each test asserts the verdict, that nothing of the program survives (no process of any sandbox
uid is left), and that the host is unchanged (files, listeners, secrets, free space).

They run real programs in the real sandbox (bubblewrap + setpriv + prlimit), as the evaluation and RL stages do.
"""

from __future__ import annotations

import os
import secrets
import socket
import textwrap
import time
from pathlib import Path

import pytest
from sandbox_helpers import leftovers, needs_isolation, run

from training.sandbox import Limits, RunStatus, Tests, Verdict
from training.sandbox.models import IOCase

pytestmark = needs_isolation

REPO = Path(__file__).resolve().parents[3]
ADD_TESTS = Tests(code="assert add(1, 2) == 3\nassert add(-1, 1) == 0\n", entry_point="add")
GOOD_ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return a * b\n"
SHORT = Limits(run_timeout=3, compile_timeout=20)


@pytest.fixture(autouse=True)
def nothing_survives():
    assert leftovers() == [], "a sandbox process was running before the test"
    yield
    assert leftovers() == [], "a process of the program outlived its run"


def program(template: str, **values) -> str:
    """A program from a dedented template; each NAME in ``values`` is replaced by its Python literal."""
    text = textwrap.dedent(template).lstrip("\n")
    for name, value in values.items():
        text = text.replace(name, repr(value))
    return text


def judged(code: str, tests: Tests = ADD_TESTS, limits: Limits = SHORT, **kw):
    t0 = time.monotonic()
    result = run(code, "python", tests, limits, **kw)
    # Killed on time: the wall clock, not the program, decides when a run ends (a generous bound, not a benchmark).
    assert time.monotonic() - t0 < limits.run_timeout + 30
    return result


def test_a_correct_program_passes_and_a_wrong_one_does_not():
    assert judged(GOOD_ADD).verdict == Verdict.passed
    wrong = judged(WRONG_ADD)
    assert wrong.verdict == Verdict.wrong_answer and "add(1, 2) == 3" in wrong.detail
    assert wrong.status == RunStatus.Failed


# -- resource exhaustion -------------------------------------------------------------------------------------

def test_fork_bomb():
    result = judged("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n" + GOOD_ADD)
    assert result.verdict == Verdict.timeout


def test_thread_bomb():
    code = ("import threading, time\nthreads = []\nwhile True:\n"
            "    t = threading.Thread(target=time.sleep, args=(100,)); t.start(); threads.append(t)\n" + GOOD_ADD)
    result = judged(code)
    assert result.verdict == Verdict.runtime_error and "can't start new thread" in result.detail


def test_memory_bomb():
    result = judged("blocks = []\nwhile True:\n    blocks.append(bytearray(50 << 20))\n" + GOOD_ADD,
                    limits=Limits(run_timeout=10, memory_limit_MB=256))
    assert result.verdict == Verdict.memory_limit


def test_memory_bomb_in_the_tested_function():
    code = "def add(a, b):\n    x = [0] * (10 ** 10)\n    return a + b\n"
    assert judged(code, limits=Limits(run_timeout=10, memory_limit_MB=256)).verdict == Verdict.memory_limit


def test_busy_loop():
    result = judged("def add(a, b):\n    while True:\n        pass\n")
    assert result.verdict == Verdict.timeout and result.run_result.status == "TimeLimitExceeded"


def test_sleep_and_blocked_stdin():
    assert judged("import time\ntime.sleep(1000)\n" + GOOD_ADD).verdict == Verdict.timeout
    # stdin is closed (or /dev/null): a read returns at once instead of hanging until the timeout
    blocked = judged("import sys\ndata = sys.stdin.read()\nassert data == ''\nwhile not sys.stdin.readline():\n"
                     "    import time; time.sleep(1000)\n" + GOOD_ADD)
    assert blocked.verdict == Verdict.timeout
    plain = run("import sys\nprint(len(sys.stdin.read()))", "python", None, SHORT)
    assert plain.run_result.stdout == "0\n"


def test_ignoring_sigterm():
    code = ("import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\ntime.sleep(1000)\n" + GOOD_ADD)
    assert judged(code).verdict == Verdict.timeout


def test_a_hundred_megabytes_of_output():
    result = run("import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.write(chunk)\n",
                 "python", Tests(kind="stdio", cases=[IOCase(stdout="x")]), Limits(run_timeout=10))
    assert result.verdict == Verdict.output_limit
    assert len(result.run_result.stdout) <= Limits().max_output_bytes


def test_filling_the_temp_dir():
    prefix = f"/tmp/fill-{secrets.token_hex(4)}-"
    code = program("""
        n = 0
        try:
            while True:
                with open(PREFIX + str(n), "wb") as fh:
                    fh.write(b"x" * (4 << 20))
                n += 1
        except OSError as e:
            print("stopped", n, e.errno)
    """, PREFIX=prefix) + WRONG_ADD
    result = judged(code, limits=Limits(run_timeout=10, tmp_size_MB=32))
    assert result.verdict == Verdict.wrong_answer
    assert "stopped" in result.run_result.stdout and " 28\n" in result.run_result.stdout  # ENOSPC, inside
    assert not Path(prefix + "0").exists()  # the sandbox's /tmp is its own tmpfs, not the host's


def test_one_huge_file_is_cut_at_the_file_size_limit():
    code = "with open('/tmp/big', 'wb') as fh:\n    fh.write(b'x' * (40 << 20))\n" + GOOD_ADD
    result = judged(code, limits=Limits(run_timeout=10, max_file_size_MB=8, tmp_size_MB=64))
    assert result.verdict == Verdict.runtime_error  # SIGXFSZ


# -- the host's files ----------------------------------------------------------------------------------------

def test_writing_to_etc_the_checkout_the_home_and_escapes():
    token = secrets.token_hex(6)
    home = Path.home()
    targets = [f"/etc/pwned-{token}", f"{REPO}/pwned-{token}", f"{home}/pwned-{token}", f"/usr/pwned-{token}",
               f"/pwned-{token}", f"../../etc/pwned-{token}", f"../../../../../root/pwned-{token}",
               f"/tmp/../etc/pwned-{token}", f"/sandbox/pwned-{token}", f"{home}/.bashrc", "/etc/passwd"]
    code = program("""
        import os
        for t in TARGETS:
            try:
                with open(t, "a") as fh:
                    fh.write("pwned")
                print("WROTE", t)
            except OSError as e:
                print("refused", t, e.errno)
        for d in ("/etc", REPO, HOME):
            try:
                os.makedirs(d + "/pwned-dir-" + TOKEN)
                print("WROTE", d)
            except OSError as e:
                print("refused", d, e.errno)
    """, TARGETS=targets, REPO=str(REPO), HOME=str(home), TOKEN=token) + GOOD_ADD
    bashrc = (home / ".bashrc").read_bytes() if (home / ".bashrc").exists() else None
    passwd = Path("/etc/passwd").read_bytes()
    result = judged(code)
    assert result.verdict == Verdict.passed  # the program itself is right; its writes simply went nowhere
    stdout = result.run_result.stdout
    wrote = [line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith("WROTE ")]
    # Inside, /tmp is the program's own tmpfs: a checkout or home that lies under the host's /tmp (a clone in
    # /tmp/...) is only a name there, which the program may create; every other write must be refused.
    assert all(os.path.normpath(path).startswith("/tmp/") for path in wrote), wrote
    assert len(wrote) + stdout.count("refused") == len(targets) + 3
    if not str(REPO).startswith("/tmp/") and not str(home).startswith("/tmp/"):
        assert not wrote
    for path in (f"/etc/pwned-{token}", REPO / f"pwned-{token}", home / f"pwned-{token}", f"/usr/pwned-{token}",
                 f"/pwned-{token}", f"/etc/pwned-dir-{token}", REPO / f"pwned-dir-{token}"):
        assert not Path(path).exists()
    assert Path("/etc/passwd").read_bytes() == passwd
    assert ((home / ".bashrc").read_bytes() if (home / ".bashrc").exists() else None) == bashrc


def test_reading_secrets(monkeypatch):
    token = secrets.token_hex(12)
    monkeypatch.setenv("SEEDCODER_TEST_SECRET", token)
    home = Path.home()
    credentials = home / f".seedcoder-test-credentials-{token[:6]}"
    credentials.write_text(f"aws_secret_access_key = {token}\n")
    try:
        paths = ["/etc/shadow", "/proc/1/environ", "/proc/self/environ", str(credentials),
                 f"{home}/.aws/credentials", f"{home}/.ssh/id_rsa", f"{home}/.netrc", f"{REPO}/config/local.yaml",
                 "/proc/1/cmdline", "/proc/1/root/etc/shadow", "../../../etc/shadow"]
        code = program("""
            import glob, os
            print(dict(os.environ))
            for p in PATHS + glob.glob("/proc/*/environ"):
                try:
                    print(p, open(p, "rb").read()[:4000])
                except OSError as e:
                    print("refused", p, e.errno)
        """, PATHS=paths) + GOOD_ADD
        result = judged(code)
        out = result.run_result.stdout + result.run_result.stderr
        assert result.verdict == Verdict.passed
        assert token not in out
        shadow_root = Path("/etc/shadow").read_text().splitlines()[0]
        assert shadow_root not in out and "stages:" not in out  # neither the host's shadow nor the checkout
        assert "refused /etc/shadow" in out and f"refused {credentials}" in out
    finally:
        credentials.unlink()


# -- the network ---------------------------------------------------------------------------------------------

def test_tcp_udp_and_dns_reach_nothing():
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", 0))
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    host_ips = ["127.0.0.1"] + sorted({info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None,
                                                                             socket.AF_INET)} - {"127.0.0.1"})
    code = program("""
        import socket
        for ip in HOST_IPS:
            try:
                s = socket.create_connection((ip, TCP_PORT), timeout=2)
                s.sendall(b"EXFIL")
                print("CONNECTED", ip)
            except OSError as e:
                print("tcp refused", ip, e)
            try:
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"EXFIL", (ip, UDP_PORT))
            except OSError as e:
                print("udp refused", ip, e)
        for name in ("example.com", "pypi.org", "localhost"):
            try:
                print("resolved", name, socket.getaddrinfo(name, 443))
            except OSError as e:
                print("dns refused", name, e)
    """, HOST_IPS=host_ips, TCP_PORT=tcp_port, UDP_PORT=udp_port) + GOOD_ADD
    try:
        result = judged(code)
        assert result.verdict == Verdict.passed
        assert "CONNECTED" not in result.run_result.stdout
        assert "resolved example.com" not in result.run_result.stdout
        tcp.setblocking(False)
        udp.setblocking(False)
        with pytest.raises(BlockingIOError):
            tcp.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(100)
    finally:
        tcp.close()
        udp.close()


# -- attacks on the run and its verdict ----------------------------------------------------------------------

def test_killing_the_parent_the_process_group_and_everything():
    for kill in ("os.kill(os.getppid(), signal.SIGKILL)", "os.killpg(0, signal.SIGKILL)",
                 "os.kill(-1, signal.SIGKILL)", "os.kill(1, signal.SIGKILL)"):
        result = judged(f"import os, signal\n{kill}\n" + WRONG_ADD)
        assert result.verdict in (Verdict.runtime_error, Verdict.wrong_answer), (kill, result)
        assert result.verdict != Verdict.passed
    # and inside the tested function, after the judge is already running the tests
    code = "import os, signal\ndef add(a, b):\n    os.kill(-1, signal.SIGKILL)\n    os.kill(1, signal.SIGKILL)\n"
    assert judged(code).verdict == Verdict.runtime_error


def test_double_fork_daemon_does_not_survive():
    marker = f"/tmp/daemon-{secrets.token_hex(4)}"
    code = program("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for _ in range(600):
                    time.sleep(0.1)
                open(MARKER, "w").write("alive")
            os._exit(0)
    """, MARKER=marker) + GOOD_ADD
    result = judged(code)
    assert result.verdict == Verdict.passed
    # the fixture checks that no process of the sandbox uids is left; the marker path is the host's /tmp
    time.sleep(0.5)
    assert not Path(marker).exists()


def test_exit_zero_at_import_is_never_a_pass():
    for exit_call in ("import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit(0)",
                      "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"):
        result = judged(exit_call + "\n" + GOOD_ADD)
        assert result.verdict == Verdict.runtime_error, (exit_call, result.verdict)
    # a plain run exits 0, and still no tests ran: not a pass
    assert judged("import os\nos._exit(0)\n" + GOOD_ADD).run_result.return_code != 0


def test_exit_zero_inside_the_tested_function():
    assert judged("import os\ndef add(a, b):\n    os._exit(0)\n").verdict == Verdict.runtime_error
    assert judged("import sys\ndef add(a, b):\n    sys.exit(0)\n").verdict == Verdict.runtime_error


def test_an_object_equal_to_everything():
    code = ("class Anything:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
            "    def __bool__(self): return True\n    def __hash__(self): return 0\n"
            "def add(a, b):\n    return Anything()\n")
    result = judged(code)
    assert result.verdict == Verdict.wrong_answer and "Anything" in result.detail
    subclass = "class S(int):\n    def __eq__(self, other): return True\ndef add(a, b):\n    return S(0)\n"
    assert judged(subclass).verdict == Verdict.wrong_answer  # the int's value (0) is what is compared


def test_patching_what_the_tests_use():
    code = ("import builtins, math, operator\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
            "math.isclose = lambda *a, **k: True\noperator.eq = lambda a, b: True\n"
            "builtins.abs = lambda x: 0\ndef add(a, b):\n    return 42.0\n")
    tests = Tests(code="import math\nassert math.isclose(add(1, 2), 3)\nassert abs(add(1, 2) - 3) < 1e-9\n",
                  entry_point="add")
    assert judged(code, tests).verdict == Verdict.wrong_answer


def test_forging_the_verdict_channel():
    # Write a "passed" line (with every nonce it could guess) to every descriptor, then leave with 0.
    code = ("import os\nfor fd in range(3, 256):\n    for line in (b'passed\\n', b'0' * 32 + b' passed \\n'):\n"
            "        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"
            "for p in ('/proc/1/fd', '/proc/self/fd'):\n    try:\n        print(p, os.listdir(p))\n"
            "    except OSError as e:\n        print('refused', p, e)\nos._exit(0)\n")
    result = judged(code + WRONG_ADD)
    assert result.verdict == Verdict.runtime_error
    # the judge's memory and descriptors are out of reach: it is not dumpable
    peek = judged("import os\nfor p in ('/proc/1/mem', '/proc/1/fd/3', '/proc/1/environ'):\n    try:\n"
                  "        open(p, 'rb').read(16); print('READ', p)\n    except OSError as e:\n"
                  "        print('refused', p, e.errno)\n" + GOOD_ADD)
    assert "READ" not in peek.run_result.stdout and peek.verdict == Verdict.passed


def test_even_a_program_that_knows_the_nonce_cannot_forge_a_pass(monkeypatch):
    """The worker closed both channels before the program ran, and the judge's descriptors are out of reach:
    a program given this run's nonce (as if it had leaked) still has nowhere to write it."""
    import training.sandbox.runner as runner

    nonce = "5eedc0de" * 4
    real = runner.secrets.token_hex
    monkeypatch.setattr(runner.secrets, "token_hex", lambda n=None: nonce if n == 16 else real(n))
    code = program("""
        import glob, os
        line = NONCE.encode() + b" passed \\n"
        leaked, fds = [], []
        for fd in range(3, 256):
            try:
                os.set_blocking(fd, False)
                leaked.append(os.read(fd, 64))
            except OSError:
                pass
            fds.append(fd)
        for path in glob.glob("/proc/*/fd/*"):
            try:
                fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
                leaked.append(os.read(fd, 64))
                fds.append(fd)
            except OSError:
                pass
        print("LEAKED", b"".join(leaked).hex(), flush=True)
        for fd in fds:
            try:
                os.write(fd, line)
            except OSError:
                pass
        os._exit(0)
    """, NONCE=nonce) + WRONG_ADD
    result = judged(code)
    assert result.verdict == Verdict.runtime_error
    assert "LEAKED" in result.run_result.stdout and nonce.encode().hex() not in result.run_result.stdout
