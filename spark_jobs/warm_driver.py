"""A warm local Spark driver: one JVM and Spark session that runs a local chain's Spark stages one after another.

On the local profile every Spark stage is its own ``python -m <stage>`` process, and each one pays the same fixed
costs before it reads a byte: the Python stack's imports, a JVM, a Spark session, the first Python workers, and
a cold JIT. For a developer's chain of nine Spark stages on a small snapshot that is a large share of the time.
The main command (scripts/pipeline.py) therefore starts this driver once for the chain, and the local stage
operator hands each Spark (and plain-Python) stage to it instead of starting a process: the stage module runs
in the driver exactly as ``python -m`` would run it (``runpy``, the same argv, ``__name__ == "__main__"``), its
log lines and exit status stream back to the operator, and it commits its own attempt as always. Between stages
the driver cancels leftover Spark jobs, drops cached data and puts back any Spark SQL setting the stage changed,
so a stage cannot see what the previous one did.

Nothing else changes: without the driver (a stage run by hand, the Airflow scheduler, a driver that died) the
operator starts the stage's own process as before, and the k8s profile never uses it. If the operator goes away
while its stage runs (a killed task), the driver exits at once, taking its JVM with it, like a killed stage
process: the attempt stays uncommitted and the next run resumes it.

The protocol and its client side (the operator, the main command) are in lake/warm_spark.py.

    python -m spark_jobs.warm_driver --socket .work/warm-spark.sock      # serve until a "stop" request
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import runpy
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lake.warm_spark import EXIT_CLIENT_GONE

log = logging.getLogger("warm_driver")


class _LineStream(io.TextIOBase):
    """A text stream that sends each complete line to the client as ``{"out": line}``."""

    def __init__(self, send):
        self._send = send
        self._buf = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buf += text
            *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._send({"out": line})
        return len(text)

    def flush(self) -> None:
        with self._lock:
            rest, self._buf = self._buf, ""
        if rest:
            self._send({"out": rest})


class Connection:
    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.reader = conn.makefile("r", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()

    def request(self) -> dict:
        line = self.reader.readline()
        if not line:
            raise EOFError("client closed the connection before its request")
        return json.loads(line)

    def send(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self._lock:
            try:
                self.conn.sendall(data)
            except OSError:  # the client is gone: like a killed stage process, stop everything now
                os._exit(EXIT_CLIENT_GONE)

    def watch_client(self) -> threading.Event:
        """Exit the driver if the client disconnects before the stage ends; set the returned event to stop."""
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                try:
                    if self.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        os._exit(EXIT_CLIENT_GONE)
                except BlockingIOError:
                    continue
                except OSError:
                    os._exit(EXIT_CLIENT_GONE)

        threading.Thread(target=watch, name="warm-driver-client", daemon=True).start()
        return done


@contextmanager
def stage_io(stream: _LineStream) -> Iterator[None]:
    """The stage's stdout, stderr and logging go to ``stream``; the driver's own come back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_out, saved_err = sys.stdout, sys.stderr
    for handler in saved_handlers:
        root.removeHandler(handler)  # the stage's logging.basicConfig installs its own, on the stream
    sys.stdout = sys.stderr = stream
    try:
        yield
    finally:
        stream.flush()
        sys.stdout, sys.stderr = saved_out, saved_err
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


class WarmDriver:
    def __init__(self, spark):
        self.spark = spark
        self.sql_conf = self._sql_conf()
        self.served = 0

    def _sql_conf(self) -> dict[str, str]:
        return dict(self.spark.conf.getAll)

    def reset(self) -> None:
        """Leave the session as a fresh one would be: no running jobs, no cached data, the original settings."""
        from pyspark.errors import PySparkException

        sc = self.spark.sparkContext
        sc.cancelAllJobs()
        self.spark.catalog.clearCache()
        for rdd in list(sc._jsc.getPersistentRDDs().values()):
            rdd.unpersist(False)
        now = self._sql_conf()
        for key, value in now.items():
            if key not in self.sql_conf:
                try:
                    self.spark.conf.unset(key)
                except PySparkException:
                    log.warning("cannot unset Spark setting %s after a stage", key)
            elif value != self.sql_conf[key]:
                self.spark.conf.set(key, self.sql_conf[key])
        for key, value in self.sql_conf.items():
            if key not in now:
                self.spark.conf.set(key, value)

    def conf_drift(self) -> list[str]:
        """Spark SQL settings that differ from the driver's start (none between stages)."""
        now = self._sql_conf()
        return sorted(k for k in set(now) | set(self.sql_conf) if now.get(k) != self.sql_conf.get(k))

    def run(self, conn: Connection, module: str, argv: list[str]) -> int:
        from lake import timing
        from spark_jobs.progress import start_progress

        timing.mark_start()
        timing.take()  # costs left over from the previous request are not this stage's
        reporter = start_progress(self.spark, module)
        reporter.label = module.removeprefix("spark_jobs.").removeprefix("training.")
        stream = _LineStream(conn.send)
        saved_argv = sys.argv
        status = 0
        done = conn.watch_client()
        t0 = time.monotonic()
        try:
            with stage_io(stream):
                sys.argv = [module, *argv]
                try:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                except SystemExit as stop:
                    code = stop.code
                    status = code if isinstance(code, int) else (0 if code is None else 1)
                    if code is not None and not isinstance(code, int):
                        print(code, file=sys.stderr)
                except BaseException:  # noqa: BLE001 - the stage's failure is reported, the driver lives on
                    traceback.print_exc()
                    status = 1
        finally:
            sys.argv = saved_argv
            done.set()
            self.reset()
            self.served += 1
        log.info("stage %s %s: exit %d in %.1fs (stage %d served)", module, " ".join(argv), status,
                 time.monotonic() - t0, self.served)
        return status


def serve(socket_path: Path, config: str | None = None) -> int:
    from lake.config import load_config
    from spark_jobs.session import spark_session

    cfg = load_config(config)
    if cfg.profile != "local":
        raise SystemExit(f"the warm driver is for the local profile (this config is {cfg.profile!r})")
    spark = spark_session(cfg, "seedcoder-warm-driver")
    driver = WarmDriver(spark)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_path))
    server.listen(4)
    log.info("warm Spark driver ready on %s (Spark %s, master %s, pid %d)", socket_path, spark.version,
             spark.sparkContext.master, os.getpid())
    try:
        while True:
            raw, _ = server.accept()
            conn = Connection(raw)
            try:
                req = conn.request()
                op = req.get("op")
                if op == "ping":
                    conn.send({"exit": 0, "pid": os.getpid(), "served": driver.served,
                               "conf_drift": driver.conf_drift()})
                elif op == "stop":
                    conn.send({"exit": 0})
                    break
                elif op == "run":
                    conn.send({"exit": driver.run(conn, str(req["module"]), [str(a) for a in req.get("argv", [])])})
                else:
                    conn.send({"out": f"unknown request {op!r}", "exit": 2})
            except (EOFError, ValueError, KeyError) as err:
                log.warning("bad request: %s", err)
            finally:
                raw.close()
    finally:
        server.close()
        socket_path.unlink(missing_ok=True)
        spark.stop()
    log.info("warm Spark driver stopped after %d stages", driver.served)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket to serve on")
    parser.add_argument("--config", default=None, help="profile YAML (default: the local profile)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its per-call INFO lines would flood every stage's log
    return serve(args.socket, args.config)


if __name__ == "__main__":
    sys.exit(main())
