"""One child process: exit statuses, heartbeat cell, signals set up by the bootstrap."""
import signal
import time

import pytest

from supervisor import heartbeat
from supervisor.process import STARTUP_TIMEOUT, ChildProcess
from tests.supervisor import children
from tests.supervisor.support import alive, read_pids, wait_for_starts, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("outcome, exitcode", [(0, 0), (5, 5), ("raise", 1), ("sigkill", -9)])
def test_exit_status(tmp_path, outcome, exitcode):
    process = ChildProcess(children.exit_on_starts, (str(tmp_path), "c", (outcome,)))
    process.start()
    assert process.join(timeout=20) == exitcode
    assert process.pid == read_pids(tmp_path, "c")[0]
    process.close()


def test_heartbeat_moves_the_deadline(tmp_path):
    process = ChildProcess(children.beat, (str(tmp_path), "b"), heartbeat_timeout=10.0)
    process.start()
    try:
        # Before the bootstrap's first beat, start-up gets STARTUP_TIMEOUT (the
        # child needs tens of milliseconds to boot, so it cannot have beaten yet).
        assert process.heartbeat_deadline() > time.monotonic() + STARTUP_TIMEOUT - 1.0
        wait_until(lambda: (tmp_path / "b.beats").exists(), message="a first beat")
        first = process.heartbeat_deadline()
        assert first <= time.monotonic() + 10.0
        wait_until(lambda: process.heartbeat_deadline() > first + 0.1, message="a later beat")
    finally:
        process.kill()
        process.join()
        process.close()


@pytest.mark.parametrize("within, lower, upper", [(60.0, 59.0, 60.0), (0.5, 9.0, 10.0)])
def test_a_child_can_promise_a_later_beat_but_not_an_earlier_one(tmp_path, within, lower, upper):
    process = ChildProcess(children.promise, (str(tmp_path), "p", within), heartbeat_timeout=10.0)
    process.start()
    try:
        wait_until(lambda: (tmp_path / "p.beats").exists(), message="the promise")
        left = process.heartbeat_deadline() - time.monotonic()
        assert lower < left <= upper  # the spec's timeout is a floor
    finally:
        process.kill()
        process.join()
        process.close()


def test_no_heartbeat_cell_without_timeout(tmp_path):
    heartbeat()                                      # a no-op outside a supervised child
    process = ChildProcess(children.sleep_forever, (str(tmp_path), "s"))
    process.start()
    try:
        assert process.heartbeat_deadline() is None
    finally:
        process.terminate()
        assert process.join() == -signal.SIGTERM
        process.close()


def test_child_ignores_sigint_and_dies_when_its_link_closes(tmp_path):
    process = ChildProcess(children.sleep_forever, (str(tmp_path), "s"))
    process.start()
    pid = wait_for_starts(tmp_path, "s", 1)[0]
    with open(f"/proc/{pid}/status") as f:
        ignored = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
    assert ignored & (1 << (signal.SIGINT - 1))
    # Closing the parent's end of the link is what the child sees when its
    # supervisor's process dies: it must end by itself.
    process._link.close()
    assert process.join(timeout=20) == 70
    assert not alive(pid)
    process.close()


@pytest.mark.parametrize("start_method, seen", [("spawn", "imported"), ("fork", "set at run time")])
def test_a_forked_child_inherits_the_parents_memory_and_a_spawned_one_does_not(
        tmp_path, monkeypatch, start_method, seen):
    monkeypatch.setitem(children.INHERITED, "value", "set at run time")
    process = ChildProcess(children.record_inherited, (str(tmp_path), "f"),
                           start_method=start_method)
    process.start()
    assert process.join(timeout=30) == 0
    assert (tmp_path / "f.inherited").read_text() == seen
    process.close()
