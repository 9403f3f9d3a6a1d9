"""The Python test harness. It runs INSIDE the sandbox (as the sandbox's PID 1) with the sandbox's python3:

    SEEDCODER_NONCE_FD=N SEEDCODER_VERDICT_FD=M [SEEDCODER_ENTRY_POINT=f] python3 -I -B harness.py

Two processes, so that nothing the program does can forge a pass:

- the **judge** (this process) never runs a line of the program. It makes itself non-dumpable (no process of the
  sandbox can read its memory, open its file descriptors or ptrace it), forks the worker, and only then reads
  the per-run nonce from the nonce pipe. It runs the test code itself, in its own interpreter, where every
  name the program defined is a stub that calls into the worker. What comes back is decoded as plain data
  (numbers, strings, bytes, None, lists, tuples, dicts, sets); anything else stays a *remote object* that the
  tests may call or pass back but never compare or test for truth, so an object whose ``__eq__`` is always
  true, a ``str`` subclass, or a patched ``math.isclose`` in the program's interpreter cannot make a test pass.
  When the tests finish it writes ``<nonce> <verdict> <detail>`` on the verdict pipe and leaves.
- the **worker** (the fork) closes the nonce and verdict pipes before anything else, runs the program
  (``/sandbox/program.py``) as ``__main__``, and answers calls. Exiting, killing itself, or writing anywhere only
  ends the run early: the judge, the sandbox's PID 1, cannot be killed from inside the sandbox and reports
  ``runtime_error``; it is the only holder of the nonce and the verdict pipe.

Protocol between them: 4-byte big-endian length + JSON. Values are encoded with type tags (see ``encode``).
"""

import json
import os
import struct
import sys

MAX_MESSAGE = 64 << 20
# Where the host put the program and the tests (read-only); only degraded mode moves it.
DATA_DIR = os.environ.pop("SEEDCODER_DATA_DIR", "/sandbox")
_LEN = struct.Struct(">I")


def send(fd, obj):
    data = json.dumps(obj, allow_nan=True, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError("message too large")
    data = _LEN.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def receive(fd):
    """The next message, or None at end of file."""
    header = _read_exactly(fd, 4)
    if header is None:
        return None
    (size,) = _LEN.unpack(header)
    if size > MAX_MESSAGE:
        raise ProtocolError(f"message of {size} bytes")
    body = _read_exactly(fd, size)
    if body is None:
        return None
    return json.loads(body)


def _read_exactly(fd, size):
    parts, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class ProtocolError(Exception):
    pass


def prctl_dumpable(flag):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, flag, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


# ==== the worker: runs the program, answers calls =========================================================

def builtin_type(name):
    """A builtin type passed by name (``int``, ``str``, ``list``...): types are how some tests ask for a kind."""
    import builtins

    value = getattr(builtins, str(name), None)
    if not isinstance(value, type):
        raise ProtocolError(f"{name!r} is not a builtin type")
    return value


def flush():
    """The program's prints so far reach the sandbox's stdout before the judge may end the worker."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def worker(requests, replies):
    import builtins
    import types

    objects = {}
    iterator_types = (types.GeneratorType, map, filter, zip, enumerate, reversed, type(iter([])),
                      type(iter(())), type(iter({})), type({}.keys()), type({}.values()), type({}.items()),
                      type(iter(range(0))), type(iter(set())), type(iter("")))

    def ref(value):
        objects[id(value)] = value
        return {"ref": id(value), "type": type(value).__qualname__}

    def encode(value, depth=0):
        if depth > 200:
            raise ValueError("nesting deeper than 200")
        kind = type(value)
        if value is None or kind in (bool, str):
            return value
        if kind is int or kind is float:
            return value
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, (bytes, bytearray)):
            return {"b": bytes(value).hex()}
        if isinstance(value, complex):
            return {"c": [value.real, value.imag]}
        if isinstance(value, list) or isinstance(value, iterator_types):
            return {"l": [encode(x, depth + 1) for x in value]}
        if isinstance(value, tuple):
            return {"t": [encode(x, depth + 1) for x in value]}
        if isinstance(value, dict):
            return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
        if isinstance(value, frozenset):
            return {"f": [encode(x, depth + 1) for x in value]}
        if isinstance(value, set):
            return {"s": [encode(x, depth + 1) for x in value]}
        if isinstance(value, range):
            return {"r": [value.start, value.stop, value.step]}
        if isinstance(value, type) and getattr(builtins, value.__name__, None) is value:
            return {"y": value.__name__}
        return ref(value)

    def decode(value):
        if isinstance(value, dict):
            if "ref" in value:
                return objects[value["ref"]]
            (tag, data), = value.items()
            return {"l": lambda: [decode(x) for x in data], "t": lambda: tuple(decode(x) for x in data),
                    "d": lambda: {decode(k): decode(v) for k, v in data},
                    "s": lambda: {decode(x) for x in data}, "f": lambda: frozenset(decode(x) for x in data),
                    "b": lambda: bytes.fromhex(data), "c": lambda: complex(*data),
                    "r": lambda: range(*data), "y": lambda: builtin_type(data)}[tag]()
        return value

    def failure(exc):
        try:
            text = str(exc)
        except BaseException:
            text = "?"
        return {"error": type(exc).__name__, "message": text[:2000]}

    program = {"__name__": "__main__", "__file__": os.path.join(os.getcwd(), "main.py"), "__builtins__": builtins}
    sys.path.insert(0, os.getcwd())
    with open(os.path.join(DATA_DIR, "program.py"), encoding="utf-8") as fh:
        source = fh.read()
    try:
        exec(compile(source, "main.py", "exec", dont_inherit=True), program)
    except BaseException as exc:  # SystemExit included: the judge reports it
        flush()
        send(replies, {"loaded": False, **failure(exc)})
        os._exit(0)
    names = {}
    for name, value in list(program.items()):
        if name.startswith("__") and name.endswith("__"):
            continue
        if isinstance(value, types.ModuleType):
            names[name] = {"module": value.__name__}
        else:
            try:
                names[name] = encode(value)
            except Exception:
                names[name] = ref(value)
    flush()
    send(replies, {"loaded": True, "names": names})

    while True:
        request = receive(requests)
        if request is None:
            os._exit(0)
        try:
            target = objects[request["ref"]]
            op = request["op"]
            if op == "call":
                result = target(*[decode(a) for a in request["args"]],
                                **{k: decode(v) for k, v in request["kwargs"].items()})
            elif op == "getattr":
                result = getattr(target, request["name"])
            elif op == "setattr":
                setattr(target, request["name"], decode(request["value"]))
                result = None
            else:
                raise ValueError(f"unknown operation {op!r}")
            reply = {"value": encode(result)}
        except BaseException as exc:
            reply = failure(exc)
        flush()
        send(replies, reply)


# ==== the judge: holds the nonce, runs the tests ==========================================================

class NotData(TypeError):
    """A test compared or tested the truth of something the program made that is not plain data."""


class RemoteError(Exception):
    """The program raised an exception that is not a builtin one (or one that would end the judge)."""


def failing_line(exc, source):
    """The line of the test code where ``exc`` was raised (the innermost one), stripped."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "tests.py":
            line = tb.tb_lineno
        tb = tb.tb_next
    lines = source.splitlines()
    return lines[line - 1].strip() if line and line <= len(lines) else "a test failed"


def judge():
    import builtins
    import importlib
    import signal

    prctl_dumpable(0)
    nonce_fd = int(os.environ.pop("SEEDCODER_NONCE_FD"))
    verdict_fd = int(os.environ.pop("SEEDCODER_VERDICT_FD"))
    entry_point = os.environ.pop("SEEDCODER_ENTRY_POINT", "") or None
    with open(os.path.join(DATA_DIR, "tests.py"), encoding="utf-8") as fh:
        tests_source = fh.read()
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(nonce_fd)
        os.close(verdict_fd)
        os.close(request_w)
        os.close(reply_r)
        prctl_dumpable(1)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            worker(request_r, reply_w)
        finally:
            os._exit(1)
    os.close(request_r)
    os.close(reply_w)
    chunks = []
    while True:
        chunk = os.read(nonce_fd, 256)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(nonce_fd)
    nonce = b"".join(chunks).strip()

    def verdict(kind, detail=""):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        detail = " ".join(str(detail).split())[:2000]
        os.write(verdict_fd, nonce + b" " + kind.encode() + b" " + detail.encode("utf-8", "replace") + b"\n")
        os._exit(0 if kind == "passed" else 1)

    def call_worker(message):
        try:
            send(request_w, message)
            reply = receive(reply_r)
        except (OSError, ValueError, ProtocolError) as exc:
            verdict("runtime_error", f"the program's process stopped answering ({exc})")
        if reply is None:
            verdict("runtime_error", "the program's process exited while the tests ran")
        if "error" in reply:
            name, message = str(reply["error"]), str(reply.get("message", ""))
            if name == "MemoryError":
                verdict("memory_limit", "MemoryError in the program")
            builtin = getattr(builtins, name, None)
            if isinstance(builtin, type) and issubclass(builtin, Exception):
                raise builtin(message)
            raise RemoteError(f"{name}: {message}")
        return decode(reply["value"])

    class Remote:
        """A program object in the worker: it can be called, its attributes read and set, passed back."""

        __slots__ = ("_ref", "_type")

        def __init__(self, ref, type_name):
            object.__setattr__(self, "_ref", ref)
            object.__setattr__(self, "_type", type_name)

        def __call__(self, *args, **kwargs):
            return call_worker({"op": "call", "ref": self._ref, "args": [encode(a) for a in args],
                                "kwargs": {str(k): encode(v) for k, v in kwargs.items()}})

        def __getattr__(self, name):
            return call_worker({"op": "getattr", "ref": self._ref, "name": name})

        def __setattr__(self, name, value):
            call_worker({"op": "setattr", "ref": self._ref, "name": name, "value": encode(value)})

        def _not_data(self, *_args):
            raise NotData(f"the tests compare data, and the program gave a {self._type} object")

        __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = __len__ = _not_data
        __iter__ = __contains__ = __getitem__ = __float__ = __int__ = __index__ = __str__ = _not_data
        __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __abs__ = _not_data
        __neg__ = __round__ = __mod__ = __pow__ = __floordiv__ = _not_data

        def __repr__(self):
            return f"<program {self._type} object>"

    def encode(value):
        kind = type(value)
        if value is None or kind in (bool, str, int, float):
            return value
        if kind is Remote:
            return {"ref": value._ref}
        if kind in (bytes, bytearray):
            return {"b": bytes(value).hex()}
        if kind is complex:
            return {"c": [value.real, value.imag]}
        if kind is list:
            return {"l": [encode(x) for x in value]}
        if kind is tuple:
            return {"t": [encode(x) for x in value]}
        if kind is dict:
            return {"d": [[encode(k), encode(v)] for k, v in value.items()]}
        if kind is set:
            return {"s": [encode(x) for x in value]}
        if kind is frozenset:
            return {"f": [encode(x) for x in value]}
        if kind is range:
            return {"r": [value.start, value.stop, value.step]}
        if kind is type and getattr(builtins, value.__name__, None) is value:
            return {"y": value.__name__}
        raise TypeError(f"the sandbox cannot pass a {kind.__qualname__} to the program")

    def decode(value):
        if value is None or type(value) in (bool, str, int, float):
            return value
        if type(value) is not dict:
            raise ProtocolError(f"malformed value {str(value)[:80]}")
        if "ref" in value:
            return Remote(int(value["ref"]), str(value.get("type", "object")))
        if len(value) != 1:
            raise ProtocolError(f"malformed value {str(value)[:80]}")
        (tag, data), = value.items()
        if tag == "l":
            return [decode(x) for x in data]
        if tag == "t":
            return tuple(decode(x) for x in data)
        if tag == "d":
            return {decode(k): decode(v) for k, v in data}
        if tag == "s":
            return {decode(x) for x in data}
        if tag == "f":
            return frozenset(decode(x) for x in data)
        if tag == "b":
            return bytes.fromhex(data)
        if tag == "c":
            return complex(float(data[0]), float(data[1]))
        if tag == "r":
            return range(int(data[0]), int(data[1]), int(data[2]))
        if tag == "y":
            return builtin_type(data)
        raise ProtocolError(f"unknown tag {tag!r}")

    try:
        loaded = receive(reply_r)
    except (OSError, ValueError, ProtocolError) as exc:
        verdict("runtime_error", f"the program's process failed to report ({exc})")
    if loaded is None:
        verdict("runtime_error", "the program's process exited before the tests ran")
    if not loaded.get("loaded"):
        name = str(loaded.get("error"))
        if name == "SystemExit":
            verdict("runtime_error", f"the program called exit({loaded.get('message')}) before the tests ran")
        if name == "MemoryError":
            verdict("memory_limit", "MemoryError while the program ran")
        verdict("runtime_error", f"{name}: {loaded.get('message')}")

    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    try:
        for name, value in loaded["names"].items():
            if type(value) is dict and "module" in value:
                try:
                    namespace[name] = importlib.import_module(str(value["module"]))
                except ImportError:
                    continue
            else:
                namespace[name] = decode(value)
    except (ProtocolError, ValueError, TypeError, KeyError) as exc:
        verdict("runtime_error", f"the program's process sent a malformed answer ({exc})")
    if entry_point and type(namespace.get(entry_point)) is not Remote:
        verdict("runtime_error", f"the program defines no function {entry_point!r}")
    try:
        exec(compile(tests_source, "tests.py", "exec", dont_inherit=True, optimize=0), namespace)
        check = namespace.get("check")
        if entry_point and callable(check) and type(check) is type(judge) and check.__globals__ is namespace:
            check(namespace[entry_point])
    except AssertionError as exc:
        verdict("wrong_answer", f"AssertionError: {str(exc) or failing_line(exc, tests_source)}")
    except NotData as exc:
        verdict("wrong_answer", str(exc))
    except ProtocolError as exc:
        verdict("runtime_error", f"the program's process sent a malformed answer ({exc})")
    except MemoryError:
        verdict("memory_limit", "MemoryError while the tests ran")
    except BaseException as exc:
        verdict("runtime_error", f"{type(exc).__name__}: {exc}")
    verdict("passed")


if __name__ == "__main__":
    judge()
