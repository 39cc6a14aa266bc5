"""Lifecycle events a supervisor publishes, and why a child process exited.

Events are small frozen dataclasses handed to the ``on_event`` callback of a
`supervisor.Supervisor`, in the order things happened. They are picklable:
a nested supervisor, which runs in its own process, forwards its events to
its parent, which publishes them to its own observer unchanged. The
``supervisor`` field is therefore a path of ids from the root supervisor,
e.g. ``"run/chains"``.

A restart shows up as `ChildExited` (with the reason) followed by
`ChildRestarted`; a sibling stopped and restarted by ``one_for_all`` or
``rest_for_one`` shows up the same way with reason ``shutdown``. When the
restart intensity is exceeded the supervisor publishes `SupervisorGaveUp`,
one `ChildExited` per child it then stops, and `SupervisorStopped`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = [
    "NORMAL", "EXIT", "SIGNAL", "HEARTBEAT_TIMEOUT", "SHUTDOWN", "START_FAILED",
    "ExitReason", "Event", "ChildStarted", "ChildRestarted", "ChildExited",
    "SupervisorGaveUp", "SupervisorStopped",
]

# Kinds of exit reason.
NORMAL = "normal"                         #: exit code 0
EXIT = "exit"                             #: non-zero exit code (an uncaught exception is 1)
SIGNAL = "signal"                         #: killed by a signal the supervisor did not send
HEARTBEAT_TIMEOUT = "heartbeat timeout"   #: silent for longer than heartbeat_timeout, killed
SHUTDOWN = "shutdown"                     #: stopped by its supervisor
START_FAILED = "start failed"             #: the process could not be started at all

_ABNORMAL = frozenset({EXIT, SIGNAL, HEARTBEAT_TIMEOUT, START_FAILED})


@dataclass(frozen=True)
class ExitReason:
    """Why a child process is no longer running.

    Parameters
    ----------
    kind : str
        One of ``normal``, ``exit``, ``signal``, ``heartbeat timeout``,
        ``shutdown``, ``start failed``.
    exitcode : int or None
        The process's exit status in `multiprocessing`'s convention (``-N``:
        killed by signal N); None when there was no process. For
        ``shutdown`` it tells how the child went: -15 on SIGTERM, -9 when it
        had to be killed, 0 when it exited by itself.
    detail : str
        Extra text, e.g. the exception that prevented a start.
    """

    kind: str
    exitcode: int | None = None
    detail: str = ""

    @classmethod
    def from_exitcode(cls, exitcode: int) -> "ExitReason":
        """Reason for a process that ended by itself with this exit status."""
        if exitcode == 0:
            return cls(NORMAL, 0)
        if exitcode > 0:
            return cls(EXIT, exitcode)
        return cls(SIGNAL, exitcode)

    @property
    def abnormal(self) -> bool:
        """True when a ``transient`` child exiting for this reason is restarted."""
        return self.kind in _ABNORMAL

    @property
    def signal(self) -> int | None:
        """Number of the signal that killed the process, if one did."""
        if self.exitcode is not None and self.exitcode < 0:
            return -self.exitcode
        return None

    def __str__(self) -> str:
        if self.kind == EXIT:
            return f"exit code {self.exitcode}"
        if self.kind == SIGNAL:
            return f"killed by signal {self.signal}"
        text = self.kind
        if self.kind in (SHUTDOWN, HEARTBEAT_TIMEOUT) and self.signal is not None:
            text += f" (killed by signal {self.signal})"
        if self.detail:
            text += f": {self.detail}"
        return text


@dataclass(frozen=True)
class Event:
    """Base of all events: which supervisor, and when (``time.time()``)."""

    supervisor: str
    time: float = field(default_factory=time.time, kw_only=True, compare=False)


@dataclass(frozen=True)
class ChildStarted(Event):
    """A child process was started for the first time (supervisor start or ``start_child``)."""

    child: str
    pid: int


@dataclass(frozen=True)
class ChildRestarted(Event):
    """A child process was started again; ``restarts`` counts this child's restarts so far."""

    child: str
    pid: int
    restarts: int


@dataclass(frozen=True)
class ChildExited(Event):
    """A child process ended (by itself, killed, or stopped by the supervisor)."""

    child: str
    pid: int | None
    reason: ExitReason


@dataclass(frozen=True)
class SupervisorGaveUp(Event):
    """More than ``max_restarts`` restarts within ``max_seconds``: the supervisor stops.

    ``child`` and ``reason`` identify the exit whose restart exceeded the
    intensity.
    """

    child: str
    reason: ExitReason
    max_restarts: int
    max_seconds: float


@dataclass(frozen=True)
class SupervisorStopped(Event):
    """The supervisor has stopped all its children and ended.

    ``reason`` is ``"shutdown"`` (its owner called ``stop``), ``"auto
    shutdown"`` (significant children finished), ``"gave up"`` or
    ``"start failed"``.
    """

    reason: str
