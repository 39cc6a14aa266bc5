"""One supervised child OS process: spawning it, its heartbeat, its link to the parent, stopping it.

By default every child runs in a fresh interpreter started with
`multiprocessing`'s ``spawn`` method (no state inherited; the same on every
platform). A spec may ask for ``fork`` instead (POSIX): the child starts in
milliseconds with everything the parent has loaded (for exmc's chain workers,
the compiled sampler and model), at the price of inheriting the parent's
memory as it is at that moment. Around the user's target, the child's
bootstrap sets up:

* **A heartbeat cell**, a shared-memory double (`multiprocessing.RawValue`)
  holding the ``time.monotonic()`` by which the next `heartbeat` is due: the
  last beat plus ``heartbeat_timeout``, or plus a longer ``within`` the child
  asked for (a child whose work comes in steps of varying length promises its
  next beat from the length of the last step). Beating is a single store,
  cheap enough to call once per draw; the supervisor reads the cell when a
  deadline falls due, so a hung child (deadlocked, stuck in a compiled loop)
  is detected without any message traffic. ``CLOCK_MONOTONIC``
  is system-wide on Linux, so parent and child read the same clock.
* **A link to the parent**: the read end of a pipe whose only write end is
  held by the supervisor. A daemon thread blocks on it and ends the process
  with `PARENT_DIED_EXIT_CODE` when it reads end-of-file, which happens when
  the supervisor's process dies however it dies (even SIGKILL). That thread
  needs the GIL, so a child stuck in compiled code that holds the GIL would
  linger; on Linux the child therefore also asks the kernel, through
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` via `ctypes`, to be killed when the
  thread that spawned it ends (the supervisor's monitor thread, which spawns
  every child and outlives them all).
* **SIGINT ignored**: Ctrl-C in a terminal reaches the whole process group;
  it is the owner's business to stop the tree (children are stopped with
  SIGTERM), not each child's to crash and be restarted meanwhile.

A child ends with its target: a return is exit code 0, an uncaught
exception exit code 1, ``sys.exit(n)`` exit code ``n``.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Mapping

__all__ = ["heartbeat", "ChildProcess", "PARENT_DIED_EXIT_CODE", "STARTUP_TIMEOUT", "spawn_context"]

#: The context children are started with unless their spec asks for ``fork``.
spawn_context = multiprocessing.get_context("spawn")

#: Exit status of a child that noticed its supervisor's process had died.
PARENT_DIED_EXIT_CODE = 70

#: Seconds a child with a heartbeat has from its spawn to its bootstrap's first
#: beat (interpreter start-up, unpickling, importing the target's module),
#: if that is longer than its heartbeat timeout. Start-up can take seconds
#: on a loaded machine; hanging in it is rare.
STARTUP_TIMEOUT = 30.0

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Set in the child by the bootstrap; None in any process not started by a supervisor.
_heartbeat_cell = None
_heartbeat_timeout = 0.0


def heartbeat(within: float | None = None) -> None:
    """Tell the supervisor that this process is alive and making progress.

    Call it from the child's target (any thread) at least every
    ``heartbeat_timeout`` seconds of its `ChildSpec`, or, with ``within``, promise
    the next beat within that many seconds instead (never less than the spec's
    ``heartbeat_timeout``, which is thus a floor). It costs one store to shared
    memory. Outside a supervised child, or for a child without a heartbeat
    timeout, it does nothing, so library code can call it unconditionally.
    """
    cell = _heartbeat_cell
    if cell is not None:
        cell.value = time.monotonic() + max(_heartbeat_timeout, within or 0.0)


class ChildProcess:
    """A child OS process running ``target(*args, **kwargs)`` under supervision.

    Parameters
    ----------
    target : callable
        Picklable top-level function run in the child.
    args : tuple, optional
    kwargs : mapping, optional
    name : str, optional
        Process name (``multiprocessing.current_process().name`` in the child).
    heartbeat_timeout : float or None, optional
        If set, a heartbeat cell is shared with the child and
        `heartbeat_deadline` tells when it is overdue: ``heartbeat_timeout``
        after the last beat; the bootstrap beats just before calling the
        target, and before that first beat the child has
        ``max(heartbeat_timeout, STARTUP_TIMEOUT)`` from its spawn.
    start_method : str, optional
        ``multiprocessing``'s start method: "spawn" (default) or "fork" (see the module
        docstring).
    """

    def __init__(self, target: Callable[..., Any], args: tuple = (),
                 kwargs: Mapping[str, Any] | None = None, *, name: str | None = None,
                 heartbeat_timeout: float | None = None, start_method: str = "spawn") -> None:
        self.target = target
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.name = name
        self.heartbeat_timeout = heartbeat_timeout
        self._context = multiprocessing.get_context(start_method)
        self._process = None
        self._link = None   # write end of the parent link; closing it tells the child to die
        self._cell = None
        self.pid: int | None = None
        self.sentinel: int | None = None

    def start(self) -> None:
        """Spawn the process; returns as soon as it exists (its start-up is asynchronous).

        Must be called from the thread that will outlive the child (see the
        module docstring about ``PR_SET_PDEATHSIG``).
        """
        if self._process is not None:
            raise RuntimeError("ChildProcess.start called twice")
        if self.heartbeat_timeout is not None:
            # Until the bootstrap's first beat the deadline is STARTUP_TIMEOUT away:
            # interpreter start-up and imports are not the target's to account for.
            allowance = max(STARTUP_TIMEOUT, self.heartbeat_timeout)
            self._cell = self._context.RawValue("d", time.monotonic() + allowance)
        link_read, link_write = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main, name=self.name, daemon=False,
            args=(self.target, self.args, self.kwargs, self._cell, link_read, os.getpid(),
                  self.heartbeat_timeout or 0.0))
        try:
            process.start()
        except BaseException:
            link_write.close()
            raise
        finally:
            link_read.close()   # the child has its own copy; ours would leak
        self._process = process
        self._link = link_write
        self.pid = process.pid
        self.sentinel = process.sentinel

    @property
    def exitcode(self) -> int | None:
        """Exit status (``-N`` for signal N), or None while running. Reaps a dead child."""
        return self._process.exitcode

    def heartbeat_deadline(self) -> float | None:
        """``time.monotonic()`` by which the next heartbeat is due, or None without heartbeat."""
        if self._cell is None:
            return None
        return self._cell.value

    def terminate(self) -> None:
        """Send SIGTERM (no effect once the process has been reaped)."""
        self._process.terminate()

    def kill(self) -> None:
        """Send SIGKILL (no effect once the process has been reaped)."""
        self._process.kill()

    def join(self, timeout: float | None = None) -> int | None:
        """Wait for the process to end; return its exit status (None on timeout)."""
        self._process.join(timeout)
        return self._process.exitcode

    def close(self) -> None:
        """Release the pipe, sentinel and heartbeat memory of an ended process."""
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._process is not None and self._process.exitcode is not None:
            self._process.close()
        self._cell = None


def _child_main(target: Callable[..., Any], args: tuple, kwargs: dict, cell: Any,
                link: Any, parent_pid: int, heartbeat_timeout: float = 0.0) -> None:
    """Bootstrap run in the child: watch the parent, arm the heartbeat, run the target."""
    global _heartbeat_cell, _heartbeat_timeout
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked child inherits the parent's handler
    _die_with_parent(link, parent_pid)
    _heartbeat_cell, _heartbeat_timeout = cell, heartbeat_timeout
    heartbeat()
    target(*args, **kwargs)


def _die_with_parent(link: Any, parent_pid: int) -> None:
    """Arrange for this process to end when the supervisor's process ends."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):   # not fatal: the pipe below still works
            pass
    if os.getppid() != parent_pid:   # the parent died before we were watching it
        os._exit(PARENT_DIED_EXIT_CODE)
    threading.Thread(target=_watch_parent, args=(link,), name="supervisor-parent-watch",
                     daemon=True).start()


def _watch_parent(link: Any) -> None:
    """Block on the parent link; end-of-file means the parent is gone, so exit at once."""
    try:
        while True:
            link.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(PARENT_DIED_EXIT_CODE)
