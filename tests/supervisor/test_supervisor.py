"""The Supervisor against OTP's supervisor_SUITE: restart types, strategies, intensity, trees.

Children are real spawned processes (targets in ``tests/supervisor/children.py``)
that record one pid per start in ``tmp_path``, so every test counts starts and
restarts exactly, and the ``supervise`` fixture checks after each test that
every pid it saw is gone (no orphans). Waits poll with deadlines; the only
fixed pauses are the crash spacings the intensity tests are about.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor import (ALL_SIGNIFICANT, BRUTAL_KILL, GAVE_UP, GAVE_UP_EXIT_CODE, ONE_FOR_ALL,
                        ONE_FOR_ONE, PERMANENT, REST_FOR_ONE, RUNNING, SIMPLE_ONE_FOR_ONE,
                        START_FAILED_STATUS, STOPPED, TEMPORARY, TRANSIENT, ChildExited,
                        ChildInfo, ChildRestarted, ChildSpec, Supervisor, SupervisorGaveUp,
                        SupervisorSpec, SupervisorStopped)
from supervisor.events import EXIT, HEARTBEAT_TIMEOUT, NORMAL, SHUTDOWN, SIGNAL
from supervisor.supervisor import add_restart
from tests.supervisor import children
from tests.supervisor.support import (EventLog, alive, all_recorded_pids, assert_all_dead,
                                      lifecycle, read_pids, select, wait_for_starts, wait_until)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def supervise(tmp_path):
    """Start supervisors with an EventLog; at teardown stop them and check every pid is gone."""
    started = []

    def start(spec: SupervisorSpec) -> tuple[Supervisor, EventLog]:
        log = EventLog()
        supervisor = Supervisor(spec, on_event=log).start()
        started.append((supervisor, log))
        return supervisor, log

    yield start
    pids = all_recorded_pids(tmp_path)
    for supervisor, log in started:
        supervisor.stop()
        pids |= log.pids()
    assert_all_dead(pids)


def worker(name: str, directory, target=children.sleep_forever, *args, **options) -> ChildSpec:
    """A ChildSpec whose target records its starts under ``name`` in ``directory``."""
    return ChildSpec(name, target, (str(directory), name) + args, **options)


def pid_of(supervisor: Supervisor, id: str) -> int | None:
    return {c.id: c.pid for c in supervisor.which_children()}[id]


# ---------------------------------------------------------------------- restart types

@pytest.mark.parametrize("restart, outcome, kind, restarted", [
    (PERMANENT, 0, NORMAL, True),
    (PERMANENT, "raise", EXIT, True),
    (PERMANENT, "sigkill", SIGNAL, True),
    (TRANSIENT, 0, NORMAL, False),
    (TRANSIENT, "raise", EXIT, True),
    (TRANSIENT, "sigkill", SIGNAL, True),
    (TEMPORARY, 0, NORMAL, False),
    (TEMPORARY, "raise", EXIT, False),
    (TEMPORARY, "sigkill", SIGNAL, False),
])
def test_restart_type_against_exit_kind(supervise, tmp_path, restart, outcome, kind, restarted):
    spec = SupervisorSpec("top", children=[
        worker("w", tmp_path, children.exit_on_starts, (outcome,), restart=restart)])
    supervisor, log = supervise(spec)
    exited = log.wait_count(ChildExited, 1, child="w")
    reason = select(exited, ChildExited)[0].reason
    assert reason.kind == kind
    assert reason.exitcode == {NORMAL: 0, EXIT: 1, SIGNAL: -signal.SIGKILL}[kind]
    if restarted:
        log.wait_count(ChildRestarted, 1, child="w")
        pids = wait_for_starts(tmp_path, "w", 2)
        assert supervisor.which_children()[0].pid == pids[1]
        assert supervisor.which_children()[0].restarts == 1
    else:
        # which_children is answered by the monitor thread after it has handled
        # the exit, so a restart, had one been decided, would already be visible.
        remaining = supervisor.which_children()
        assert remaining == ([] if restart == TEMPORARY else
                             [ChildInfo("w", None, "worker", TRANSIENT, 0)])
        assert not select(log.snapshot(), ChildRestarted)
    assert len(read_pids(tmp_path, "w")) == (2 if restarted else 1)
    assert supervisor.status == RUNNING


def test_exit_code_is_reported(supervise, tmp_path):
    spec = SupervisorSpec("top", children=[
        worker("w", tmp_path, children.exit_on_starts, (7,), restart=TEMPORARY)])
    _, log = supervise(spec)
    reason = select(log.wait_count(ChildExited, 1), ChildExited)[0].reason
    assert (reason.kind, reason.exitcode, str(reason)) == (EXIT, 7, "exit code 7")
    assert reason.abnormal


# ---------------------------------------------------------------------- strategies

@pytest.mark.parametrize("strategy, expected", [
    (ONE_FOR_ONE, [("exited", "b", SIGNAL), ("restarted", "b")]),
    (ONE_FOR_ALL, [("exited", "b", SIGNAL), ("exited", "c", SHUTDOWN), ("exited", "a", SHUTDOWN),
                   ("restarted", "a"), ("restarted", "b"), ("restarted", "c")]),
    (REST_FOR_ONE, [("exited", "b", SIGNAL), ("exited", "c", SHUTDOWN),
                    ("restarted", "b"), ("restarted", "c")]),
])
def test_strategy_restarts_exactly_the_right_children(supervise, tmp_path, strategy, expected):
    spec = SupervisorSpec("top", strategy=strategy,
                          children=[worker(name, tmp_path) for name in "abc"])
    supervisor, log = supervise(spec)
    first = {name: wait_for_starts(tmp_path, name, 1)[0] for name in "abc"}
    before = len(log.snapshot())
    os.kill(first["b"], signal.SIGKILL)
    restarted = {e[1] for e in expected if e[0] == "restarted"}
    events = log.wait_count(ChildRestarted, len(restarted))
    assert lifecycle(events[before:]) == expected
    for name in "abc":
        pids = (wait_for_starts(tmp_path, name, 2) if name in restarted
                else read_pids(tmp_path, name))
        assert len(pids) == (2 if name in restarted else 1), name
        assert pid_of(supervisor, name) == pids[-1]
    assert [c.restarts for c in supervisor.which_children()] == \
        [int(name in restarted) for name in "abc"]


def test_one_for_all_drops_temporary_and_restarts_finished_transient(supervise, tmp_path):
    # OTP: a temporary sibling stopped by a group restart is not restarted; a
    # transient child that had finished normally is started again with the group.
    spec = SupervisorSpec("top", strategy=ONE_FOR_ALL, children=[
        worker("a", tmp_path),
        worker("done", tmp_path, children.exit_on_starts, (0,), restart=TRANSIENT),
        worker("temp", tmp_path, restart=TEMPORARY),
    ])
    supervisor, log = supervise(spec)
    log.wait_count(ChildExited, 1, child="done")
    pid_a = wait_for_starts(tmp_path, "a", 1)[0]
    wait_for_starts(tmp_path, "temp", 1)
    assert [c.pid is None for c in supervisor.which_children()] == [False, True, False]
    before = len(log.snapshot())
    os.kill(pid_a, signal.SIGKILL)
    events = log.wait_count(ChildRestarted, 2)
    assert lifecycle(events[before:]) == [
        ("exited", "a", SIGNAL), ("exited", "temp", SHUTDOWN),
        ("restarted", "a"), ("restarted", "done")]
    assert [c.id for c in supervisor.which_children()] == ["a", "done"]
    assert len(wait_for_starts(tmp_path, "done", 2)) == 2
    assert len(read_pids(tmp_path, "temp")) == 1


def test_simple_one_for_one_dynamic_children(supervise, tmp_path):
    template = ChildSpec("worker", children.sleep_forever, (str(tmp_path),), shutdown=2.0)
    supervisor, log = supervise(SupervisorSpec("pool", strategy=SIMPLE_ONE_FOR_ONE,
                                               children=[template]))
    assert supervisor.which_children() == []
    ids = [supervisor.start_child((f"w{i}",)) for i in range(3)]
    assert ids == ["worker-0", "worker-1", "worker-2"]
    assert supervisor.start_child(("named",), id="chain-7") == "chain-7"
    with pytest.raises(ValueError):
        supervisor.start_child(("again",), id="chain-7")
    first = {name: wait_for_starts(tmp_path, name, 1)[0] for name in ("w0", "w1", "w2", "named")}
    before = len(log.snapshot())
    os.kill(first["w1"], signal.SIGKILL)
    events = log.wait_count(ChildRestarted, 1)
    assert lifecycle(events[before:]) == [("exited", "worker-1", SIGNAL),
                                          ("restarted", "worker-1")]
    assert len(wait_for_starts(tmp_path, "w1", 2)) == 2          # same extra arguments
    assert [len(read_pids(tmp_path, n)) for n in ("w0", "w2", "named")] == [1, 1, 1]
    supervisor.terminate_child("worker-0")
    exited = select(log.snapshot(), ChildExited, child="worker-0")
    assert [e.reason.kind for e in exited] == [SHUTDOWN]
    assert not alive(first["w0"])
    assert [c.id for c in supervisor.which_children()] == ["worker-1", "worker-2", "chain-7"]
    with pytest.raises(KeyError):
        supervisor.terminate_child("worker-0")


def test_simple_one_for_one_stops_children_in_parallel(supervise, tmp_path):
    # Three children ignoring SIGTERM with 1 s shutdowns: one after another
    # would take 3 s; OTP stops dynamic children all at once.
    template = ChildSpec("stubborn", children.ignore_sigterm, (str(tmp_path),), shutdown=1.0)
    supervisor, log = supervise(SupervisorSpec("pool", strategy=SIMPLE_ONE_FOR_ONE,
                                               children=[template]))
    for i in range(3):
        supervisor.start_child((f"s{i}",))
    for i in range(3):
        wait_for_starts(tmp_path, f"s{i}", 1)
    began = time.monotonic()
    assert supervisor.stop() == STOPPED
    elapsed = time.monotonic() - began
    exits = select(log.snapshot(), ChildExited)
    assert [(e.reason.kind, e.reason.exitcode) for e in exits] == [(SHUTDOWN, -9)] * 3
    assert 1.0 <= elapsed < 2.9


def test_start_child_on_static_supervisor(supervise, tmp_path):
    supervisor, log = supervise(SupervisorSpec("top", children=[worker("a", tmp_path)]))
    assert supervisor.start_child(worker("b", tmp_path)) == "b"
    with pytest.raises(ValueError):
        supervisor.start_child(worker("b", tmp_path))
    with pytest.raises(TypeError):
        supervisor.start_child(("args",))
    assert [c.id for c in supervisor.which_children()] == ["a", "b"]
    wait_for_starts(tmp_path, "b", 1)
    supervisor.stop()
    assert lifecycle(log.snapshot())[-3:] == [("exited", "b", SHUTDOWN), ("exited", "a", SHUTDOWN),
                                              ("SupervisorStopped", "shutdown")]


# ---------------------------------------------------------------------- restart intensity

def test_add_restart_keeps_restarts_inside_the_period_inclusive():
    assert add_restart([], 100.0, 60.0) == [100.0]
    assert add_restart([39.0, 40.0, 70.0], 100.0, 60.0) == [40.0, 70.0, 100.0]


@pytest.mark.parametrize("max_restarts", [0, 1, 2])
def test_gives_up_after_max_restarts_within_period(supervise, tmp_path, max_restarts):
    spec = SupervisorSpec("top", max_restarts=max_restarts, max_seconds=60, children=[
        worker("sibling", tmp_path),
        worker("crasher", tmp_path, children.exit_on_starts, (1,) * 10),
    ])
    supervisor, log = supervise(spec)
    assert supervisor.wait(timeout=30) == GAVE_UP
    events = log.snapshot()
    crashes = [("exited", "crasher", EXIT)]
    expected = [("started", "sibling"), ("started", "crasher")] \
        + (crashes + [("restarted", "crasher")]) * max_restarts + crashes \
        + [("SupervisorGaveUp", "crasher"), ("exited", "sibling", SHUTDOWN),
           ("SupervisorStopped", "gave up")]
    assert lifecycle(events) == expected
    assert len(read_pids(tmp_path, "crasher")) == max_restarts + 1
    assert len(read_pids(tmp_path, "sibling")) <= 1     # it may be stopped before it records
    failure = supervisor.failure
    assert isinstance(failure, SupervisorGaveUp)
    assert (failure.child, failure.reason.exitcode, failure.max_restarts) == \
        ("crasher", 1, max_restarts)
    assert supervisor.which_children() == []


@pytest.mark.parametrize("max_seconds, gives_up", [(0.5, False), (60.0, True)])
def test_crashes_spaced_beyond_the_period_do_not_add_up(supervise, tmp_path, max_seconds,
                                                        gives_up):
    # Each start lives 0.7 s before crashing, so consecutive restarts are more
    # than 0.5 s apart: with max_restarts=1 only a 60 s period makes two count.
    spec = SupervisorSpec("top", max_restarts=1, max_seconds=max_seconds, children=[
        worker("crasher", tmp_path, children.exit_on_starts, (1, 1, 1), 0.7)])
    supervisor, log = supervise(spec)
    if gives_up:
        assert supervisor.wait(timeout=30) == GAVE_UP
        assert len(select(log.snapshot(), ChildRestarted)) == 1
        assert len(read_pids(tmp_path, "crasher")) == 2
    else:
        log.wait_count(ChildRestarted, 3)
        wait_for_starts(tmp_path, "crasher", 4)     # the fourth start runs for ever
        assert supervisor.status == RUNNING
        assert not select(log.snapshot(), SupervisorGaveUp)
        assert supervisor.which_children()[0].restarts == 3


# ---------------------------------------------------------------------- supervision trees

def test_nested_supervisor_giving_up_is_one_failure_of_its_parent(supervise, tmp_path):
    inner = SupervisorSpec("sub", max_restarts=1, children=[
        worker("crasher", tmp_path, children.exit_on_starts, (1,) * 20)])
    spec = SupervisorSpec("top", max_restarts=1, children=[worker("peer", tmp_path), inner])
    supervisor, log = supervise(spec)
    assert supervisor.wait(timeout=40) == GAVE_UP
    events = log.snapshot()
    # Each incarnation of "sub" sees two crashes (one restart, then too many).
    assert len(read_pids(tmp_path, "crasher")) == 4
    assert len(select(events, SupervisorGaveUp, supervisor="top/sub")) == 2
    assert len(select(events, ChildRestarted, supervisor="top/sub")) == 2
    # ... and its parent sees two abnormal exits of "sub": one restart, then it gives up.
    sub_exits = select(events, ChildExited, supervisor="top", child="sub")
    assert [(e.reason.kind, e.reason.exitcode) for e in sub_exits] == \
        [(EXIT, GAVE_UP_EXIT_CODE)] * 2
    assert lifecycle(events, "top") == [
        ("started", "peer"), ("started", "sub"),
        ("exited", "sub", EXIT), ("restarted", "sub"),
        ("exited", "sub", EXIT), ("SupervisorGaveUp", "sub"),
        ("exited", "peer", SHUTDOWN), ("SupervisorStopped", "gave up")]
    assert len(read_pids(tmp_path, "peer")) <= 1        # started once (it may not have recorded)
    # The nested supervisor's story comes before its exit in the parent's stream.
    last_inner = max(i for i, e in enumerate(events) if e.supervisor == "top/sub")
    assert events.index(sub_exits[-1]) > last_inner


def test_stopping_a_tree_stops_grandchildren_first(supervise, tmp_path):
    inner = SupervisorSpec("sub", children=[worker("x", tmp_path), worker("y", tmp_path)])
    spec = SupervisorSpec("top", children=[worker("a", tmp_path), inner])
    supervisor, log = supervise(spec)
    grandchildren = [wait_for_starts(tmp_path, n, 1)[0] for n in ("x", "y")]
    assert supervisor.stop() == STOPPED
    assert lifecycle(log.snapshot())[-6:] == [
        ("exited", "y", SHUTDOWN), ("exited", "x", SHUTDOWN), ("SupervisorStopped", "shutdown"),
        ("exited", "sub", SHUTDOWN), ("exited", "a", SHUTDOWN),
        ("SupervisorStopped", "shutdown")]
    assert not any(alive(pid) for pid in grandchildren)


def test_killed_nested_supervisor_takes_its_children_along(supervise, tmp_path):
    inner = SupervisorSpec("sub", children=[worker("x", tmp_path)])
    supervisor, log = supervise(SupervisorSpec("top", children=[inner]))
    old_x = wait_for_starts(tmp_path, "x", 1)[0]
    os.kill(pid_of(supervisor, "sub"), signal.SIGKILL)
    log.wait_count(ChildRestarted, 1, supervisor="top", child="sub")
    assert_all_dead([old_x])             # it noticed its supervisor's death by itself
    assert alive(wait_for_starts(tmp_path, "x", 2)[1])


def test_auto_shutdown_when_significant_children_finish(supervise, tmp_path):
    # The MCMC pattern: transient chains under a nested supervisor that ends
    # when all of them are done; a chain that crashes is restarted first.
    chains = SupervisorSpec("chains", restart=TRANSIENT, significant=True,
                            auto_shutdown=ALL_SIGNIFICANT, children=[
                                worker("c0", tmp_path, children.exit_on_starts, (0,),
                                       restart=TRANSIENT, significant=True),
                                worker("c1", tmp_path, children.exit_on_starts, ("sigkill", 0),
                                       restart=TRANSIENT, significant=True)])
    spec = SupervisorSpec("run", auto_shutdown=ALL_SIGNIFICANT, children=[chains])
    supervisor, log = supervise(spec)
    assert supervisor.wait(timeout=30) == STOPPED
    events = log.snapshot()
    assert select(events, SupervisorStopped, supervisor="run/chains")[0].reason == "auto shutdown"
    assert [e.reason.kind for e in select(events, ChildExited, supervisor="run")] == [NORMAL]
    assert select(events, SupervisorStopped, supervisor="run")[0].reason == "auto shutdown"
    assert [len(read_pids(tmp_path, n)) for n in ("c0", "c1")] == [1, 2]


# ---------------------------------------------------------------------- heartbeat

def test_hung_child_is_killed_on_heartbeat_timeout_and_restarted(supervise, tmp_path):
    timeout = 1.0      # generous: a beating child must not miss it on a loaded machine
    spec = SupervisorSpec("top", children=[
        worker("beater", tmp_path, children.beat, (0,), heartbeat_timeout=timeout),
        worker("silent", tmp_path)])     # no heartbeat_timeout: never beats, never killed
    supervisor, log = supervise(spec)
    events = log.wait_count(ChildRestarted, 1, child="beater")
    exits = select(events, ChildExited, child="beater")
    assert [(e.reason.kind, e.reason.exitcode) for e in exits] == [(HEARTBEAT_TIMEOUT, -9)]
    assert str(exits[0].reason) == "heartbeat timeout (killed by signal 9)"
    first, second = wait_for_starts(tmp_path, "beater", 2)
    assert not alive(first)

    def beats_of_second_start() -> int:
        try:
            start, count = (Path(tmp_path) / "beater.beats").read_text().split()
        except (FileNotFoundError, ValueError):
            return 0
        return int(count) if int(start) == 1 else 0

    # A child that keeps beating outlives several timeouts untouched.
    wait_until(lambda: beats_of_second_start() >= 2 * timeout / 0.05, message="beats")
    assert len(select(log.snapshot(), ChildExited)) == 1
    assert [c.pid for c in supervisor.which_children()] == \
        [second, wait_for_starts(tmp_path, "silent", 1)[0]]


# ---------------------------------------------------------------------- shutdown

def test_shutdown_timeout_then_kill_and_brutal_kill_in_reverse_order(supervise, tmp_path):
    spec = SupervisorSpec("top", children=[
        worker("polite", tmp_path),
        worker("stubborn", tmp_path, children.ignore_sigterm, shutdown=0.5),
        worker("brutal", tmp_path, children.ignore_sigterm, shutdown=BRUTAL_KILL)])
    supervisor, log = supervise(spec)
    for name in ("polite", "stubborn", "brutal"):
        wait_for_starts(tmp_path, name, 1)    # recorded after SIGTERM is ignored
    began = time.monotonic()
    assert supervisor.stop() == STOPPED
    assert time.monotonic() - began >= 0.5
    exits = select(log.snapshot(), ChildExited)
    assert [(e.child, e.reason.kind, e.reason.exitcode) for e in exits] == [
        ("brutal", SHUTDOWN, -signal.SIGKILL),
        ("stubborn", SHUTDOWN, -signal.SIGKILL),
        ("polite", SHUTDOWN, -signal.SIGTERM)]
    assert supervisor.stop() == STOPPED     # idempotent


def test_stop_from_an_event_callback(tmp_path):
    supervisor = None

    def on_event(event):
        if isinstance(event, ChildExited) and event.reason.abnormal:
            supervisor.stop()       # only requests the stop: we are on the monitor thread

    spec = SupervisorSpec("top", children=[
        worker("crasher", tmp_path, children.exit_on_starts, (1,) * 5)])
    supervisor = Supervisor(spec, on_event=on_event)
    with supervisor:
        assert supervisor.wait(timeout=30) == STOPPED
    assert_all_dead(read_pids(tmp_path, "crasher"))


def test_failed_start_stops_the_children_already_started(tmp_path):
    log = EventLog()
    spec = SupervisorSpec("top", children=[
        worker("a", tmp_path),
        ChildSpec("unpicklable", lambda: None)])
    supervisor = Supervisor(spec, on_event=log)
    with pytest.raises(Exception):
        supervisor.start()
    assert supervisor.status == START_FAILED_STATUS
    assert lifecycle(log.snapshot()) == [("started", "a"), ("exited", "a", SHUTDOWN),
                                         ("SupervisorStopped", "start failed")]
    assert_all_dead(log.pids())


# ---------------------------------------------------------------------- no orphans

def _owner(tmp_path, mode: str) -> subprocess.Popen:
    code = ("from tests.supervisor.children import run_owner; "
            f"run_owner({str(tmp_path)!r}, {mode!r})")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def _owner_pids(tmp_path, owner: subprocess.Popen) -> list[int]:
    ready = Path(tmp_path) / "owner.ready"
    wait_until(lambda: (ready.exists() and ready.read_text().endswith("\n"))
               or owner.poll() is not None,
               message="the owner's tree")
    assert owner.poll() is None or ready.exists(), "owner failed"
    pids = [int(p) for p in ready.read_text().split()]
    return pids + read_pids(tmp_path, "owner-worker") + read_pids(tmp_path, "owner-inner")


def test_children_die_when_their_supervisor_process_is_killed(tmp_path):
    owner = _owner(tmp_path, "block")
    try:
        pids = _owner_pids(tmp_path, owner)
        assert len(pids) == 4 and all(alive(pid) for pid in pids)
        owner.kill()
        owner.wait(timeout=10)
        assert_all_dead(pids)
    finally:
        owner.kill()
        owner.wait()


def test_interpreter_exit_stops_a_tree_left_running(tmp_path):
    # The owner returns without stop(): the atexit hook must stop the tree, or
    # multiprocessing's own exit hook would wait for the children for ever.
    owner = _owner(tmp_path, "return")
    try:
        pids = _owner_pids(tmp_path, owner)
        assert owner.wait(timeout=20) == 0
        assert_all_dead(pids, timeout=5)
    finally:
        owner.kill()
        owner.wait()
