"""Test support for the supervisor tests: waiting with deadlines, event logs, liveness of pids."""
from __future__ import annotations

import glob
import os
import threading
import time
from typing import Callable, Iterable

from supervisor import ChildExited, ChildRestarted, ChildStarted, Event

DEADLINE = 20.0   # seconds any single wait may take before the test fails


def wait_until(predicate: Callable[[], object], timeout: float = DEADLINE,
               message: str = "condition") -> object:
    """Poll ``predicate`` every 10 ms until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie (dead, not yet reaped by its parent) is dead.

    Orphans are reparented to PID 1, which in a container may never reap
    them, so ``os.kill(pid, 0)`` alone would call a dead orphan alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:   # gone between the two checks (or no /proc: trust os.kill)
        return os.path.isdir("/proc") is False
    return state not in ("Z", "X")


def assert_all_dead(pids: Iterable[int], timeout: float = 10.0) -> None:
    """Every pid must be gone within ``timeout`` (noticing a parent's death takes a moment)."""
    pids = set(pids)
    wait_until(lambda: not [pid for pid in pids if alive(pid)], timeout,
               f"processes to end: {sorted(pid for pid in pids if alive(pid))}")


def read_pids(directory, name: str) -> list[int]:
    """Pids recorded by ``children.record_start`` under ``name``, one per start."""
    path = os.path.join(str(directory), f"{name}.pids")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(word) for word in f.read().split()]


def all_recorded_pids(directory) -> set[int]:
    pids: set[int] = set()
    for path in glob.glob(os.path.join(str(directory), "*.pids")):
        name = os.path.basename(path)[:-len(".pids")]
        pids.update(read_pids(directory, name))
    return pids


def wait_for_starts(directory, name: str, count: int, timeout: float = DEADLINE) -> list[int]:
    """Wait until ``name`` has recorded at least ``count`` starts; return its pids."""
    wait_until(lambda: len(read_pids(directory, name)) >= count, timeout,
               f"{count} start(s) of {name}")
    return read_pids(directory, name)


class EventLog:
    """An ``on_event`` callback that records events and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._condition = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    def snapshot(self) -> list[Event]:
        with self._condition:
            return list(self.events)

    def wait_for(self, predicate: Callable[[list[Event]], object], timeout: float = DEADLINE,
                 message: str = "events") -> list[Event]:
        """Block until ``predicate(events)`` holds; return the events so far."""
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {message}; "
                                     f"events: {self.events}")
            return list(self.events)

    def wait_count(self, kind: type, count: int, timeout: float = DEADLINE,
                   **fields: object) -> list[Event]:
        """Block until ``count`` events of class ``kind`` with these field values were seen."""
        return self.wait_for(lambda events: len(select(events, kind, **fields)) >= count,
                             timeout, f"{count} x {kind.__name__} {fields}")

    def pids(self) -> set[int]:
        return {e.pid for e in self.snapshot()
                if isinstance(e, (ChildStarted, ChildRestarted, ChildExited))
                and e.pid is not None}


def select(events: list[Event], kind: type, **fields: object) -> list[Event]:
    """The events of class ``kind`` whose attributes equal ``fields``."""
    return [e for e in events if isinstance(e, kind)
            and all(getattr(e, key) == value for key, value in fields.items())]


def lifecycle(events: list[Event], supervisor: str | None = None) -> list[tuple]:
    """Events reduced to comparable tuples: (class name, child, reason kind or None)."""
    out = []
    for e in events:
        if supervisor is not None and e.supervisor != supervisor:
            continue
        if isinstance(e, ChildExited):
            out.append(("exited", e.child, e.reason.kind))
        elif isinstance(e, ChildRestarted):
            out.append(("restarted", e.child))
        elif isinstance(e, ChildStarted):
            out.append(("started", e.child))
        else:
            out.append((type(e).__name__, getattr(e, "child", getattr(e, "reason", None))))
    return out
