"""Child targets for the supervisor tests: top-level functions a spawned process can import.

Spawned children unpickle their target by module name, so these live in an
importable module rather than in a test file: ``tests.supervisor.children``
resolves in the child because ``tests/conftest.py`` puts the repository root
on ``sys.path`` and the spawn method hands the parent's ``sys.path`` to the
child. (``tests`` and ``tests/supervisor`` have no ``__init__.py``; they are
namespace packages. Do not add one to ``tests/supervisor``: pytest would
then name the test modules ``supervisor.test_*`` and shadow the package.)

Every target first appends its pid to ``<directory>/<name>.pids``, one line
per start, so a test counts starts and restarts exactly and knows every pid
it must later find dead.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from supervisor import heartbeat


def pid_file(directory: str, name: str) -> str:
    return os.path.join(directory, f"{name}.pids")


def record_start(directory: str, name: str) -> int:
    """Append this pid to the name's pid file; return the start index (0 on the first start)."""
    path = pid_file(directory, name)
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    with open(path) as f:
        return len(f.read().split()) - 1


def sleep_forever(directory: str, name: str) -> None:
    """Record the start, then block until killed."""
    record_start(directory, name)
    while True:
        time.sleep(3600)


def exit_on_starts(directory: str, name: str, outcomes: tuple, delay: float = 0.0) -> None:
    """On start k < len(outcomes), wait ``delay`` s and end as ``outcomes[k]`` says; later, block.

    An outcome is an exit code (0 is normal), ``"raise"`` (uncaught
    exception, exit code 1) or ``"sigkill"`` (kill itself with SIGKILL).
    """
    start = record_start(directory, name)
    if start >= len(outcomes):
        while True:
            time.sleep(3600)
    time.sleep(delay)
    outcome = outcomes[start]
    if outcome == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if outcome == "raise":
        raise RuntimeError(f"{name}: deliberate failure on start {start}")
    sys.exit(outcome)


def ignore_sigterm(directory: str, name: str) -> None:
    """Ignore SIGTERM (then record the start, so the test knows it is armed) and block."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record_start(directory, name)
    while True:
        time.sleep(3600)


def beat(directory: str, name: str, hang_on_starts: tuple = (), interval: float = 0.05,
         beats_before_hang: int = 3) -> None:
    """Call ``heartbeat`` every ``interval`` s and count the beats in ``<name>.beats``.

    On the starts listed in ``hang_on_starts`` stop beating after
    ``beats_before_hang`` beats and block (a hung child).
    """
    start = record_start(directory, name)
    count = 0
    while True:
        if start in hang_on_starts and count >= beats_before_hang:
            while True:
                time.sleep(3600)
        heartbeat()
        count += 1
        with open(os.path.join(directory, f"{name}.beats"), "w") as f:
            f.write(f"{start} {count}\n")
        time.sleep(interval)


def promise(directory: str, name: str, within: float) -> None:
    """Beat once promising the next beat ``within`` seconds, say so in ``<name>.beats``, block."""
    heartbeat(within=within)
    with open(os.path.join(directory, f"{name}.beats"), "w") as f:
        f.write("1\n")
    while True:
        time.sleep(3600)


def run_owner(directory: str, mode: str) -> None:
    """An owner process for the orphan tests: start a small tree, report, then act.

    ``mode`` ``"block"``: block until killed (the test kills this owner with
    SIGKILL). ``"return"``: return without calling ``stop``; interpreter exit
    (the module's atexit hook) must stop the tree.
    """
    from supervisor import ChildSpec, Supervisor, SupervisorSpec

    spec = SupervisorSpec("owner", children=[
        ChildSpec("worker", sleep_forever, (directory, "owner-worker")),
        SupervisorSpec("nested", children=[
            ChildSpec("inner", sleep_forever, (directory, "owner-inner"))]),
    ])
    supervisor = Supervisor(spec)
    supervisor.start()
    deadline = time.monotonic() + 30
    while not all(os.path.exists(pid_file(directory, n)) for n in ("owner-worker", "owner-inner")):
        if time.monotonic() > deadline:
            sys.exit("children did not start")
        time.sleep(0.01)
    pids = [child.pid for child in supervisor.which_children()]   # worker and nested supervisor
    with open(os.path.join(directory, "owner.ready"), "w") as f:
        f.write(" ".join(str(pid) for pid in pids) + "\n")
    if mode == "block":
        while True:
            time.sleep(3600)


#: Set by a test in the parent after import: a forked child sees it, a spawned one does not.
INHERITED = {"value": "imported"}


def record_inherited(directory: str, name: str) -> None:
    """Record the start, then write what this process sees of ``INHERITED``."""
    record_start(directory, name)
    with open(os.path.join(directory, f"{name}.inherited"), "w") as f:
        f.write(INHERITED["value"])
