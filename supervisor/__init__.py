"""A generic OTP-style supervisor of OS processes (knows nothing of MCMC).

Children are real processes (``multiprocessing`` spawn context) described by
`ChildSpec` / `SupervisorSpec` and watched by a `Supervisor` that restarts
them by OTP's rules: restart types ``permanent`` / ``transient`` /
``temporary``, strategies ``one_for_one`` / ``one_for_all`` /
``rest_for_one`` / ``simple_one_for_one``, restart intensity
(``max_restarts`` within ``max_seconds``), nested supervisors, shutdown
timeouts or ``brutal_kill``. A child that opts in with ``heartbeat_timeout``
calls `heartbeat` to prove it is not hung. Lifecycle events
(`supervisor.events`) go to an ``on_event`` callback.

Modules: `supervisor.spec` (specifications), `supervisor.process` (one child
process), `supervisor.supervisor` (the monitor), `supervisor.events`.

Examples
--------
>>> from supervisor import ChildSpec, Supervisor, SupervisorSpec, TRANSIENT
>>> spec = SupervisorSpec("run", children=[
...     ChildSpec(f"chain-{i}", run_chain, (i,), restart=TRANSIENT, heartbeat_timeout=30)
...     for i in range(4)])                                        # doctest: +SKIP
>>> with Supervisor(spec, on_event=print) as supervisor:          # doctest: +SKIP
...     ...
"""
from supervisor.events import (ChildExited, ChildRestarted, ChildStarted, Event, ExitReason,
                               SupervisorGaveUp, SupervisorStopped)
from supervisor.process import PARENT_DIED_EXIT_CODE, heartbeat
from supervisor.spec import (ALL_SIGNIFICANT, ANY_SIGNIFICANT, BRUTAL_KILL, NEVER, ONE_FOR_ALL,
                             ONE_FOR_ONE, PERMANENT, REST_FOR_ONE, SIMPLE_ONE_FOR_ONE, TEMPORARY,
                             TRANSIENT, ChildSpec, SupervisorSpec)
from supervisor.supervisor import (GAVE_UP, GAVE_UP_EXIT_CODE, NOT_STARTED, RUNNING,
                                   START_FAILED_STATUS, STOPPED, ChildInfo, Supervisor)

__all__ = [
    "Supervisor", "ChildSpec", "SupervisorSpec", "ChildInfo", "heartbeat",
    "PERMANENT", "TRANSIENT", "TEMPORARY", "BRUTAL_KILL",
    "ONE_FOR_ONE", "ONE_FOR_ALL", "REST_FOR_ONE", "SIMPLE_ONE_FOR_ONE",
    "NEVER", "ANY_SIGNIFICANT", "ALL_SIGNIFICANT",
    "NOT_STARTED", "RUNNING", "STOPPED", "GAVE_UP", "START_FAILED_STATUS",
    "GAVE_UP_EXIT_CODE", "PARENT_DIED_EXIT_CODE",
    "Event", "ExitReason", "ChildStarted", "ChildRestarted", "ChildExited",
    "SupervisorGaveUp", "SupervisorStopped",
]
