"""Exit reasons and lifecycle events: classification, wording, and that they cross processes."""
import pickle

import pytest

from supervisor.events import (EXIT, HEARTBEAT_TIMEOUT, NORMAL, SHUTDOWN, SIGNAL, START_FAILED,
                               ChildExited, ChildRestarted, ChildStarted, ExitReason,
                               SupervisorGaveUp, SupervisorStopped)


@pytest.mark.parametrize("exitcode, kind, text, abnormal", [
    (0, NORMAL, "normal", False),
    (1, EXIT, "exit code 1", True),
    (3, EXIT, "exit code 3", True),
    (-9, SIGNAL, "killed by signal 9", True),
    (-15, SIGNAL, "killed by signal 15", True),
])
def test_reason_from_exitcode(exitcode, kind, text, abnormal):
    reason = ExitReason.from_exitcode(exitcode)
    assert (reason.kind, reason.exitcode, str(reason), reason.abnormal) == \
        (kind, exitcode, text, abnormal)
    assert reason.signal == (-exitcode if exitcode < 0 else None)


def test_reasons_set_by_the_supervisor():
    assert not ExitReason(SHUTDOWN, -15).abnormal      # transient children are not restarted
    assert str(ExitReason(SHUTDOWN, 0)) == "shutdown"
    assert str(ExitReason(SHUTDOWN, -9)) == "shutdown (killed by signal 9)"
    assert ExitReason(HEARTBEAT_TIMEOUT, -9).abnormal
    assert str(ExitReason(HEARTBEAT_TIMEOUT, -9)) == "heartbeat timeout (killed by signal 9)"
    failed = ExitReason(START_FAILED, None, "PicklingError()")
    assert failed.abnormal and str(failed) == "start failed: PicklingError()"


def test_events_pickle_round_trip():
    # Nested supervisors forward their events to the parent through a pipe.
    events = [ChildStarted("a", "c", 1), ChildRestarted("a/b", "c", 2, 1),
              ChildExited("a", "c", 3, ExitReason.from_exitcode(-9)),
              SupervisorGaveUp("a", "c", ExitReason.from_exitcode(1), 3, 60.0),
              SupervisorStopped("a", "gave up")]
    for event in events:
        copy = pickle.loads(pickle.dumps(event))
        assert copy == event and copy.time == event.time
