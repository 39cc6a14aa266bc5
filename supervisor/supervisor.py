"""The Supervisor: starts child processes, sees their exits at once, restarts them by OTP's rules.

All supervision happens in one background *monitor thread*, which owns the
children like an OTP supervisor's gen_server owns its state: the public
methods (`Supervisor.start_child`, `Supervisor.terminate_child`,
`Supervisor.which_children`, `Supervisor.stop`) send it a command and wait
for the answer, so there is no shared mutable state to lock. The monitor
thread sleeps in `multiprocessing.connection.wait` on every child's process
sentinel (readable the moment the child dies), on the event pipes of nested
supervisors and on a wake-up pipe for commands, with a timeout set by the
earliest heartbeat deadline. Nothing is polled.

The restart rules follow ``supervisor.erl`` (OTP 27):

* a ``permanent`` child is restarted after any exit; a ``transient`` one
  after an abnormal exit (`ExitReason.abnormal`); a ``temporary`` one never,
  and it is forgotten, as is every dynamic child that is not restarted;
* before each restart the restart is recorded and, if more than
  ``max_restarts`` restarts lie within the last ``max_seconds`` seconds
  (inclusive), the supervisor gives up: it stops all its children in reverse
  start order and ends with status `GAVE_UP`;
* ``one_for_all`` / ``rest_for_one`` stop the other / later children in
  reverse start order (temporary ones are then dropped) and start the group
  again in start order, including children that were not running (a
  transient child that had finished normally), as OTP does;
* a start that fails counts as another restart of the same child (OTP's
  ``try_again``), so a child that cannot start ends in giving up.

A nested supervisor (a `SupervisorSpec` among the children) runs in its own
process; when it gives up it exits with `GAVE_UP_EXIT_CODE`, which its parent
sees as an abnormal exit and handles with its own strategy and intensity. A
nested supervisor's events are forwarded to the parent's ``on_event``.

Shutdown leaves no orphans: `stop` (also called by the context manager, and
for every running supervisor at interpreter exit) stops children in reverse
start order honouring each shutdown spec, and children whose supervisor
process dies end themselves (see `supervisor.process`).
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing import connection as mp_connection
# multiprocessing.util's atexit hook joins all children: it must be registered before ours.
import multiprocessing.util  # noqa: F401
from typing import Any, Callable

from supervisor.events import (HEARTBEAT_TIMEOUT, SHUTDOWN, START_FAILED, ChildExited,
                               ChildRestarted, ChildStarted, Event, ExitReason,
                               SupervisorGaveUp, SupervisorStopped)
from supervisor.process import ChildProcess, spawn_context
from supervisor.spec import (ALL_SIGNIFICANT, ANY_SIGNIFICANT, BRUTAL_KILL, NEVER, ONE_FOR_ALL,
                             REST_FOR_ONE, SIMPLE_ONE_FOR_ONE, TEMPORARY, TRANSIENT, ChildSpec,
                             SupervisorSpec)

__all__ = ["Supervisor", "ChildInfo", "NOT_STARTED", "RUNNING", "STOPPED", "GAVE_UP",
           "START_FAILED_STATUS", "GAVE_UP_EXIT_CODE"]

logger = logging.getLogger(__name__)

# Supervisor status.
NOT_STARTED = "not started"
RUNNING = "running"
STOPPED = "stopped"                  #: stopped by its owner, or by auto shutdown
GAVE_UP = "gave up"                  #: restart intensity exceeded; all children stopped
START_FAILED_STATUS = "start failed"  #: a child could not be started by `Supervisor.start`

#: Exit status of a nested supervisor's process after it gave up.
GAVE_UP_EXIT_CODE = 3

# Supervisors with a live monitor thread, stopped at interpreter exit.
_running: "weakref.WeakSet[Supervisor]" = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for supervisor in list(_running):
        try:
            supervisor.stop()
        except Exception:  # pragma: no cover - best effort at exit
            logger.exception("stopping supervisor %s at exit failed", supervisor.name)


@dataclass(frozen=True)
class ChildInfo:
    """One child as reported by `Supervisor.which_children`.

    Attributes
    ----------
    id : str
    pid : int or None
        None when the child is not running (a transient child that finished).
    kind : {"worker", "supervisor"}
    restart : str
        Its restart type.
    restarts : int
        How many times the supervisor has restarted it.
    """

    id: str
    pid: int | None
    kind: str
    restart: str
    restarts: int


class _Child:
    """The monitor thread's record of one child."""

    __slots__ = ("spec", "process", "events", "restarts")

    def __init__(self, spec: ChildSpec | SupervisorSpec) -> None:
        self.spec = spec
        self.process: ChildProcess | None = None
        self.events = None     # read end of a nested supervisor's event pipe
        self.restarts = 0

    @property
    def id(self) -> str:
        return self.spec.id


class _Reply:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def add_restart(restarts: list[float], now: float, max_seconds: float) -> list[float]:
    """Record a restart at ``now`` and forget those older than ``max_seconds``.

    OTP's ``add_restart/3``: restarts at or after ``now - max_seconds`` are
    kept. The supervisor gives up when the returned list is longer than
    ``max_restarts``.

    Parameters
    ----------
    restarts : list of float
        Times (``time.monotonic()``) of earlier restarts, oldest first.
    now : float
    max_seconds : float

    Returns
    -------
    list of float
        The restarts still inside the period, ``now`` last.
    """
    threshold = now - max_seconds
    return [t for t in restarts if t >= threshold] + [now]


class Supervisor:
    """Supervise child OS processes by OTP's rules.

    Parameters
    ----------
    spec : SupervisorSpec
        Children, strategy and restart intensity.
    on_event : callable, optional
        Called with each `supervisor.events.Event` (this supervisor's and
        those forwarded by nested supervisors), in order, from the monitor
        thread: keep it quick and do not call this supervisor's methods from
        it except `stop`. ``queue.Queue().put`` makes an events queue.
    name : str, optional
        Name used in events and process names; defaults to ``spec.id``.

    Examples
    --------
    >>> spec = SupervisorSpec("run", children=[ChildSpec("chain-0", run_chain, (0,))])
    >>> with Supervisor(spec, on_event=print) as supervisor:   # doctest: +SKIP
    ...     supervisor.wait(timeout=60)
    """

    def __init__(self, spec: SupervisorSpec, *, on_event: Callable[[Event], Any] | None = None,
                 name: str | None = None) -> None:
        if not isinstance(spec, SupervisorSpec):
            raise TypeError(f"spec must be a SupervisorSpec, got {spec!r}")
        self.spec = spec
        self.name = spec.id if name is None else name
        self._on_event = on_event
        self._status = NOT_STARTED
        self._failure: SupervisorGaveUp | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._done = threading.Event()
        self._start_error: BaseException | None = None
        # Monitor-thread state.
        self._children: list[_Child] = []
        self._restarts: list[float] = []
        self._dynamic_count = 0
        self._stop_requested = False
        self._finished = False
        # Commands from other threads.
        self._commands: collections.deque = collections.deque()
        self._command_lock = threading.Lock()
        self._closed = False
        self._wake_read = self._wake_write = -1

    # ------------------------------------------------------------------ public API

    @property
    def status(self) -> str:
        """``"not started"``, ``"running"``, ``"stopped"``, ``"gave up"`` or ``"start failed"``."""
        return self._status

    @property
    def failure(self) -> SupervisorGaveUp | None:
        """The `SupervisorGaveUp` event if the supervisor gave up, else None."""
        return self._failure

    def start(self) -> "Supervisor":
        """Start the monitor thread and the children, in order; return self.

        Returns once every child process has been spawned (not once their
        targets have done anything). If a child cannot be spawned (e.g. its
        target cannot be pickled), the children already started are stopped
        and the exception is raised.
        """
        if self._thread is not None:
            raise RuntimeError(f"supervisor {self.name!r} was already started")
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._status = RUNNING
        # A daemon thread: at interpreter exit, non-daemon threads are joined
        # *before* atexit handlers run, which would hang; _stop_all_at_exit stops us.
        self._thread = threading.Thread(target=self._run, name=f"supervisor {self.name}",
                                        daemon=True)
        _running.add(self)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        return self

    def stop(self, timeout: float | None = None) -> str:
        """Stop all children (reverse start order, honouring shutdown specs) and the monitor.

        Idempotent. From inside an ``on_event`` callback it only requests the
        stop, which happens when the callback returns.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the shutdown; by default until it is done.

        Returns
        -------
        str
            The final status (``"running"`` if the timeout expired first).
        """
        if self._thread is None:
            return self._status
        if threading.current_thread() is self._thread:
            self._stop_requested = True
            return self._status
        with self._command_lock:
            if not self._closed:
                self._commands.append(("stop", (), None))
                self._wake()
        self._thread.join(timeout)
        return self._status

    def wait(self, timeout: float | None = None) -> str | None:
        """Wait until the supervisor has ended (stopped, gave up); return its status.

        Returns None if ``timeout`` seconds passed first. A supervisor without
        ``auto_shutdown`` only ends by `stop` or by giving up.
        """
        if self._thread is None:
            raise RuntimeError(f"supervisor {self.name!r} was not started")
        if not self._done.wait(timeout):
            return None
        return self._status

    def start_child(self, child: ChildSpec | SupervisorSpec | tuple = (), *,
                    id: str | None = None) -> str:
        """Add a child at run time and start it; return its id.

        Parameters
        ----------
        child : ChildSpec, SupervisorSpec or tuple
            Under ``simple_one_for_one``: extra positional arguments, appended
            to the template's ``args``. Otherwise a child spec, appended after
            the existing children.
        id : str, optional
            Only for ``simple_one_for_one``: the new child's id; by default the
            template id with a counter, ``"<template>-0"``, ``"<template>-1"``...
        """
        return self._call("start_child", child, id)

    def terminate_child(self, id: str) -> None:
        """Stop a child by its shutdown spec and remove it from the supervisor."""
        self._call("terminate_child", id)

    def which_children(self) -> list[ChildInfo]:
        """The children in start order (empty once the supervisor has ended)."""
        try:
            return self._call("which_children")
        except _NotRunning:
            return []

    def __enter__(self) -> "Supervisor":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.spec.strategy} {self._status}>"

    # ------------------------------------------------------------------ commands

    def _call(self, command: str, *args: Any) -> Any:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a supervisor's on_event callback may only call stop()")
        if self._thread is None:
            raise _NotRunning(f"supervisor {self.name!r} was not started")
        reply = _Reply()
        with self._command_lock:
            if self._closed:
                raise _NotRunning(f"supervisor {self.name!r} is {self._status}")
            self._commands.append((command, args, reply))
            self._wake()
        reply.done.wait()
        if reply.error is not None:
            raise reply.error
        return reply.value

    def _wake(self) -> None:
        """Interrupt the monitor's wait (caller holds the command lock)."""
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:   # the pipe is full: a wake-up is pending anyway
            pass

    def _run_commands(self) -> None:
        try:
            os.read(self._wake_read, 4096)
        except BlockingIOError:
            pass
        while not self._finished:
            with self._command_lock:
                if not self._commands:
                    return
                command, args, reply = self._commands.popleft()
            if command == "stop":
                self._stop_requested = True
                continue
            try:
                reply.value = getattr(self, "_command_" + command)(*args)
            except Exception as exc:
                reply.error = exc
            reply.done.set()

    def _command_start_child(self, child: Any, id: str | None) -> str:
        if self.spec.strategy == SIMPLE_ONE_FOR_ONE:
            template = self.spec.children[0]
            if isinstance(child, (ChildSpec, SupervisorSpec)):
                raise TypeError("a simple_one_for_one supervisor takes extra arguments "
                                "(a tuple), not a child spec")
            if id is None:
                id = f"{template.id}-{self._dynamic_count}"
                self._dynamic_count += 1
            spec = dataclasses.replace(template, id=id, args=template.args + tuple(child))
        else:
            if not isinstance(child, (ChildSpec, SupervisorSpec)):
                raise TypeError(f"start_child takes a ChildSpec or SupervisorSpec, got {child!r}")
            if id is not None:
                raise TypeError("id is only for simple_one_for_one; set it in the spec")
            if child.significant and self.spec.auto_shutdown == NEVER:
                raise ValueError(f"child {child.id!r} is significant but the supervisor has "
                                 "auto_shutdown='never'")
            spec = child
        if any(c.id == spec.id for c in self._children):
            raise ValueError(f"supervisor {self.name!r} already has a child {spec.id!r}")
        entry = _Child(spec)
        self._spawn(entry)
        self._children.append(entry)
        self._publish(ChildStarted(self.name, entry.id, entry.process.pid))
        return entry.id

    def _command_terminate_child(self, id: str) -> None:
        entry = self._find(id)
        self._shutdown([entry])
        self._children.remove(entry)

    def _command_which_children(self) -> list[ChildInfo]:
        return [ChildInfo(c.id, c.process.pid if c.process else None,
                          "supervisor" if isinstance(c.spec, SupervisorSpec) else "worker",
                          c.spec.restart, c.restarts) for c in self._children]

    def _find(self, id: str) -> _Child:
        for entry in self._children:
            if entry.id == id:
                return entry
        raise KeyError(f"supervisor {self.name!r} has no child {id!r}")

    # ------------------------------------------------------------------ monitor thread

    def _run(self) -> None:
        try:
            try:
                if self.spec.strategy != SIMPLE_ONE_FOR_ONE:
                    for spec in self.spec.children:
                        entry = _Child(spec)
                        self._spawn(entry)
                        self._children.append(entry)
                        self._publish(ChildStarted(self.name, entry.id, entry.process.pid))
            except BaseException as exc:
                self._start_error = exc
                self._shutdown_all()
                self._finish(START_FAILED_STATUS, "start failed")
                return
            finally:
                self._started.set()
            self._loop()
        except BaseException:
            # A bug in the monitor must not leave children behind.
            logger.exception("supervisor %s crashed; stopping its children", self.name)
            try:
                self._shutdown_all()
            finally:
                self._finish(STOPPED, "crashed")

    def _loop(self) -> None:
        while not self._finished:
            if self._stop_requested:
                self._shutdown_all()
                self._finish(STOPPED, SHUTDOWN)
                return
            waitables: list[Any] = [self._wake_read]
            by_sentinel: dict[int, tuple[_Child, ChildProcess]] = {}
            by_events: dict[Any, _Child] = {}
            deadline = None
            now = time.monotonic()
            for entry in self._children:
                process = entry.process
                if process is None:
                    continue
                by_sentinel[process.sentinel] = (entry, process)
                waitables.append(process.sentinel)
                if entry.events is not None:
                    by_events[entry.events] = entry
                    waitables.append(entry.events)
                due = process.heartbeat_deadline()
                if due is not None:
                    # A first beat can move a booting child's deadline earlier (see
                    # process.STARTUP_TIMEOUT); looking again every heartbeat_timeout
                    # is enough to never miss it, since a beat after now is due
                    # no earlier than now + heartbeat_timeout.
                    due = min(due, now + process.heartbeat_timeout)
                    if deadline is None or due < deadline:
                        deadline = due
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = mp_connection.wait(waitables, timeout)
            for item in ready:     # events first: a nested supervisor's story precedes its exit
                if item in by_events:
                    self._pump_events(by_events[item])
            for item in ready:
                if self._finished:
                    return
                if isinstance(item, int) and item in by_sentinel:
                    entry, process = by_sentinel[item]
                    if entry.process is process and entry in self._children:
                        process.join()
                        self._handle_exit(entry, ExitReason.from_exitcode(process.exitcode))
            if not self._finished:
                self._check_heartbeats()
            if not self._finished:
                self._run_commands()

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        for entry in list(self._children):
            if self._finished:
                return
            process = entry.process
            if process is None or entry not in self._children:
                continue
            due = process.heartbeat_deadline()
            if due is None or due > now or process.exitcode is not None:
                continue   # alive and beating, or already dead (its sentinel will tell)
            process.kill()
            process.join()
            self._handle_exit(entry, ExitReason(HEARTBEAT_TIMEOUT, process.exitcode))

    def _handle_exit(self, entry: _Child, reason: ExitReason) -> None:
        """A child ended by itself (or was killed as hung): OTP's ``do_restart``."""
        self._release(entry, reason)
        restart = entry.spec.restart
        if restart != TEMPORARY and (reason.abnormal or restart != TRANSIENT):
            self._restart(entry, reason)
            return
        if restart == TEMPORARY or self.spec.strategy == SIMPLE_ONE_FOR_ONE:
            self._children.remove(entry)
        self._check_auto_shutdown(entry)

    def _restart(self, entry: _Child, reason: ExitReason) -> None:
        """Restart after ``entry`` exited, by the strategy, unless the intensity is exceeded."""
        self._restarts = add_restart(self._restarts, time.monotonic(), self.spec.max_seconds)
        if len(self._restarts) > self.spec.max_restarts:
            self._give_up(entry, reason)
            return
        strategy = self.spec.strategy
        if strategy == ONE_FOR_ALL:
            group = list(self._children)
        elif strategy == REST_FOR_ONE:
            group = self._children[self._children.index(entry):]
        else:
            group = [entry]
        others = [c for c in group if c is not entry]
        self._shutdown(list(reversed(others)))
        for other in others:
            if other.spec.restart == TEMPORARY:
                self._children.remove(other)
                group.remove(other)
        for member in group:
            try:
                self._spawn(member)
            except Exception as exc:
                failed = ExitReason(START_FAILED, None, repr(exc))
                self._publish(ChildExited(self.name, member.id, None, failed))
                self._restart(member, failed)   # OTP's try_again: another restart
                return
            member.restarts += 1
            self._publish(ChildRestarted(self.name, member.id, member.process.pid,
                                         member.restarts))

    def _give_up(self, entry: _Child, reason: ExitReason) -> None:
        self._failure = SupervisorGaveUp(self.name, entry.id, reason, self.spec.max_restarts,
                                         self.spec.max_seconds)
        self._publish(self._failure)
        self._shutdown_all()
        self._finish(GAVE_UP, GAVE_UP)

    def _check_auto_shutdown(self, entry: _Child) -> None:
        mode = self.spec.auto_shutdown
        if mode == NEVER or not entry.spec.significant:
            return
        if mode == ALL_SIGNIFICANT and any(c.spec.significant and c.process is not None
                                           for c in self._children):
            return
        assert mode in (ANY_SIGNIFICANT, ALL_SIGNIFICANT)
        self._shutdown_all()
        self._finish(STOPPED, "auto shutdown")

    def _spawn(self, entry: _Child) -> None:
        """Start ``entry``'s process (a worker, or a nested supervisor with its event pipe)."""
        spec = entry.spec
        name = f"{self.name}/{spec.id}"
        if isinstance(spec, SupervisorSpec):
            events_read, events_write = spawn_context.Pipe(duplex=False)
            process = ChildProcess(_run_nested_supervisor, (spec, name, events_write), name=name)
            try:
                process.start()
            except BaseException:
                events_read.close()
                raise
            finally:
                events_write.close()
            entry.events = events_read
        else:
            process = ChildProcess(spec.target, spec.args, spec.kwargs, name=name,
                                   heartbeat_timeout=spec.heartbeat_timeout,
                                   start_method=spec.start_method)
            process.start()
        entry.process = process

    def _release(self, entry: _Child, reason: ExitReason) -> None:
        """Forget an ended process: drain a nested supervisor's last events, close, publish."""
        process = entry.process
        if entry.events is not None:
            self._pump_events(entry, until_closed=True)
        entry.process = None
        process.close()
        self._publish(ChildExited(self.name, entry.id, process.pid, reason))

    def _pump_events(self, entry: _Child, until_closed: bool = False) -> None:
        """Republish what a nested supervisor sent; close the pipe at end-of-file.

        With ``until_closed`` (its process has ended, so all it wrote is in
        the pipe) read to the end; otherwise only what is there now.
        """
        conn = entry.events
        try:
            while until_closed or conn.poll():
                self._publish(conn.recv())
        except (EOFError, OSError):
            conn.close()
            entry.events = None

    def _shutdown_all(self) -> None:
        """Stop every child: in reverse start order, or all at once under simple_one_for_one."""
        children = list(reversed(self._children))
        if self.spec.strategy == SIMPLE_ONE_FOR_ONE:
            self._shutdown(children, parallel=True)
        else:
            self._shutdown(children)

    def _shutdown(self, children: list[_Child], parallel: bool = False) -> None:
        """Stop children by their shutdown specs; one after another unless ``parallel``.

        Each gets SIGTERM and up to its ``shutdown`` seconds to exit before
        SIGKILL, or SIGKILL at once for ``brutal_kill``. A child found
        already dead is reported with its own reason, not ``shutdown``.
        """
        if not parallel:
            for entry in children:
                self._shutdown([entry], parallel=True)
            return
        now = time.monotonic()
        pending: list[list[Any]] = []   # [entry, process, kill deadline or None, own reason]
        for entry in children:
            process = entry.process
            if process is None:
                continue
            if process.exitcode is not None:
                pending.append([entry, process, None, ExitReason.from_exitcode(process.exitcode)])
                continue
            shutdown = entry.spec.shutdown
            if shutdown == BRUTAL_KILL:
                process.kill()
                pending.append([entry, process, None, None])
            else:
                process.terminate()
                pending.append([entry, process, now + shutdown, None])
        alive = {item[1].sentinel: item for item in pending if item[3] is None}
        while alive:
            deadlines = [item[2] for item in alive.values() if item[2] is not None]
            timeout = None
            if deadlines:
                timeout = max(0.0, min(deadlines) - time.monotonic())
                if timeout == float("inf"):
                    timeout = None
            conns = {item[0].events: item[0] for item in alive.values()
                     if item[0].events is not None}
            ready = mp_connection.wait(list(alive) + list(conns), timeout)
            for item in ready:
                if item in conns:
                    self._pump_events(conns[item])
                elif item in alive:
                    del alive[item]
            now = time.monotonic()
            for item in alive.values():
                if item[2] is not None and item[2] <= now:
                    item[1].kill()
                    item[2] = None
        for entry, process, _, own_reason in pending:
            process.join()
            reason = own_reason or ExitReason(SHUTDOWN, process.exitcode)
            self._release(entry, reason)

    def _finish(self, status: str, reason: str) -> None:
        """End the monitor: publish, set the status, fail pending commands, wake waiters."""
        if self._done.is_set():
            return
        self._finished = True
        self._publish(SupervisorStopped(self.name, reason))
        self._status = status
        with self._command_lock:
            self._closed = True
            pending = list(self._commands)
            self._commands.clear()
            os.close(self._wake_read)
            os.close(self._wake_write)
        for command, _, reply in pending:
            if reply is not None:
                reply.error = _NotRunning(f"supervisor {self.name!r} is {status}")
                reply.done.set()
        _running.discard(self)
        self._done.set()

    def _publish(self, event: Event) -> None:
        if event.supervisor == self.name:   # nested supervisors log their own
            _log(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("on_event callback of supervisor %s failed", self.name)


class _NotRunning(RuntimeError):
    """The supervisor has ended (or never started)."""


def _log(event: Event) -> None:
    if isinstance(event, SupervisorGaveUp):
        logger.error("supervisor %s gave up: child %s exited (%s), more than %d restarts "
                     "in %g s", event.supervisor, event.child, event.reason,
                     event.max_restarts, event.max_seconds)
    elif isinstance(event, ChildExited) and event.reason.abnormal:
        logger.warning("supervisor %s: child %s (pid %s) exited: %s", event.supervisor,
                       event.child, event.pid, event.reason)
    else:
        logger.debug("%s", event)


# ---------------------------------------------------------------------- nested supervisors

class _ShutdownRequested(BaseException):
    """Raised in a nested supervisor's main thread by SIGTERM from its parent."""


def _raise_shutdown(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # one shutdown is enough
    raise _ShutdownRequested


def _run_nested_supervisor(spec: SupervisorSpec, name: str, events: Any) -> None:
    """Target of a nested supervisor's process: supervise, then exit with the outcome.

    SIGTERM from the parent stops the subtree (exit 0, seen by the parent as
    ``shutdown``); giving up exits with `GAVE_UP_EXIT_CODE`, an abnormal exit
    for the parent; auto shutdown exits 0 (normal).
    """
    supervisor = Supervisor(spec, name=name, on_event=events.send)
    status = STOPPED
    try:
        signal.signal(signal.SIGTERM, _raise_shutdown)
        supervisor.start()
        status = supervisor.wait()
    except _ShutdownRequested:
        supervisor.stop()
        status = STOPPED
    if status != STOPPED:
        sys.exit(GAVE_UP_EXIT_CODE)
