"""Discovery: which repositories were active in a snapshot's period, from GH Archive's hourly event files.

GH Archive publishes every public GitHub event as one gzipped JSON-lines file per hour, named
``YYYY-MM-DD-H.json.gz`` (hour without padding, UTC). A repository is a candidate when it has ``PushEvent``s in
the period; its push count orders candidates and feeds the ``min_push_events`` threshold.

Each line is handled in isolation (:mod:`lake.faults`): a line that breaks the decoder in an unforeseen way (a
deeply nested document raises RecursionError) is recorded as a failed line with its exception type and position
and the scan goes on; the stage fails only when more lines fail than ``item_failures`` allows.

One hour is the unit of work (Spark maps over hours). An hour is all or nothing: a missing file (404) or a cut
or corrupt gzip contributes no counts and is reported, so the result never depends on how far a broken download
got. Malformed lines (bad JSON, invalid UTF-8, no repository name) are skipped and counted.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import requests

from lake.faults import isolated

log = logging.getLogger(__name__)

REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")


def hour_names(start: datetime, end: datetime) -> list[str]:
    """GH Archive file stems of every hour in [start, end).

    >>> from datetime import timezone
    >>> hour_names(datetime(2026, 8, 31, 22, tzinfo=timezone.utc), datetime(2026, 9, 1, 1, tzinfo=timezone.utc))
    ['2026-08-31-22', '2026-08-31-23', '2026-09-01-0']
    """
    names = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        names.append(f"{hour:%Y-%m-%d}-{hour.hour}")
        hour += timedelta(hours=1)
    return names


@dataclass
class HourScan:
    """What one hourly file contributed; ``status`` is ok | missing | corrupt."""

    hour: str
    status: str
    pushes: Counter = field(default_factory=Counter)
    lines: int = 0
    events: int = 0
    malformed: int = 0
    failed: list[dict] = field(default_factory=list)  # lake.faults.ItemError dicts of lines that raised
    detail: str | None = None


def parse_events(lines: Iterator[bytes], scan: HourScan) -> None:
    """Count push events per repository into ``scan`` from raw JSON lines.

    >>> scan = HourScan("h", "ok")
    >>> parse_events(iter([b'{"type": "PushEvent", "repo": {"name": "a/b"}}', b'{oops', b'\\xff\\n',
    ...                    b'{"type": "WatchEvent", "repo": {"name": "a/b"}}', b'{"type": "PushEvent"}', b'',
    ...                    b'[' * 100_000]), scan)
    >>> dict(scan.pushes), scan.events, scan.malformed, [(f["item"], f["error_type"]) for f in scan.failed]
    ({'a/b': 1}, 2, 3, [('h:line 7', 'RecursionError')])
    """
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        scan.lines += 1
        _, error = isolated("gharchive_line_error", f"{scan.hour}:line {number}", _count_event, raw, scan)
        if error is not None:
            scan.failed.append(error.to_dict())


def _count_event(raw: bytes, scan: HourScan) -> None:
    """One line into ``scan``: an event, or a malformed line (bad JSON, no repository name)."""
    try:
        event = json.loads(raw)
        name = event["repo"]["name"]
        kind = event["type"]
    except (ValueError, KeyError, TypeError):
        scan.malformed += 1
        return
    if not isinstance(name, str) or not REPO_NAME.match(name):
        scan.malformed += 1
        return
    scan.events += 1
    if kind == "PushEvent":
        scan.pushes[name] += 1


def _open_hour(root: str, hour: str, timeout_s: float) -> IO[bytes] | None:
    """The raw gzip stream of one hour, or None if the archive has no such file."""
    name = f"{hour}.json.gz"
    if "://" not in root or root.startswith("file://"):
        path = Path(root.removeprefix("file://")) / name
        return path.open("rb") if path.exists() else None
    resp = requests.get(f"{root.rstrip('/')}/{name}", stream=True, timeout=timeout_s)
    if resp.status_code == 404:
        resp.close()
        return None
    resp.raise_for_status()
    resp.raw.decode_content = False
    return resp.raw


def scan_hour(root: str, hour: str, *, timeout_s: float = 60.0, attempts: int = 3) -> HourScan:
    """Scan one hourly file; network errors are retried, then the hour is reported corrupt."""
    last = None
    for _ in range(attempts):
        scan = HourScan(hour, "ok")
        try:
            stream = _open_hour(root, hour, timeout_s)
            if stream is None:
                return HourScan(hour, "missing")
            with stream, gzip.GzipFile(fileobj=stream) as lines:
                parse_events(iter(lines), scan)
            return scan
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            return HourScan(hour, "corrupt", detail=f"{type(err).__name__}: {err}")
        except (requests.RequestException, OSError) as err:
            last = f"{type(err).__name__}: {err}"
            log.warning("GH Archive hour %s: %s; retrying", hour, last)
    return HourScan(hour, "corrupt", detail=last)
