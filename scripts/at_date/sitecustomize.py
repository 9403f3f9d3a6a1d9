"""Loaded by every Python process that ``scripts/at_date.sh`` starts (this directory is on their PYTHONPATH).

Shifts the wall clock (``time.time``, ``datetime.now``, ``date.today``, ...) by ``SEEDCODER_CLOCK_OFFSET_S`` seconds
from the real clock with time-machine, and lets it run. An offset rather than a fixed instant keeps every process
(the test, Airflow's scheduler, API server, task runners, stages) on the same shifted clock whenever it starts.
Monotonic clocks, sleeps and timeouts are untouched.
"""

import os
import time

_offset = os.environ.get("SEEDCODER_CLOCK_OFFSET_S")
if _offset:
    import time_machine

    time_machine.travel(time.time() + float(_offset), tick=True).start()
