"""Child and supervisor specifications: what to start, when to restart it, how to stop it.

The vocabulary is OTP's (``supervisor.erl``): a child specification names a
start function with its arguments, a restart type and a shutdown; a supervisor
specification adds a restart strategy and the restart intensity. A
`SupervisorSpec` is itself a valid child of another supervisor, which makes a
supervision tree.

Specifications are plain frozen dataclasses. Everything in them must be
picklable, because every child (a nested supervisor included) runs in its own
OS process started with the ``spawn`` method: a target must be a top-level
function of an importable module, not a lambda or a closure.
"""
from __future__ import annotations

import math
import multiprocessing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

__all__ = [
    "PERMANENT", "TRANSIENT", "TEMPORARY", "RESTART_TYPES",
    "BRUTAL_KILL",
    "ONE_FOR_ONE", "ONE_FOR_ALL", "REST_FOR_ONE", "SIMPLE_ONE_FOR_ONE", "STRATEGIES",
    "NEVER", "ANY_SIGNIFICANT", "ALL_SIGNIFICANT", "AUTO_SHUTDOWNS",
    "ChildSpec", "SupervisorSpec",
]

# Restart types (OTP semantics).
PERMANENT = "permanent"   #: always restarted, whatever the exit reason
TRANSIENT = "transient"   #: restarted only after an abnormal exit
TEMPORARY = "temporary"   #: never restarted; forgotten once it has exited
RESTART_TYPES = (PERMANENT, TRANSIENT, TEMPORARY)

#: Shutdown by SIGKILL at once, without giving the child a chance to clean up.
BRUTAL_KILL = "brutal_kill"

# Restart strategies.
ONE_FOR_ONE = "one_for_one"
ONE_FOR_ALL = "one_for_all"
REST_FOR_ONE = "rest_for_one"
SIMPLE_ONE_FOR_ONE = "simple_one_for_one"
STRATEGIES = (ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE, SIMPLE_ONE_FOR_ONE)

# Automatic shutdown (OTP 24's ``auto_shutdown`` flag).
NEVER = "never"
ANY_SIGNIFICANT = "any_significant"
ALL_SIGNIFICANT = "all_significant"
AUTO_SHUTDOWNS = (NEVER, ANY_SIGNIFICANT, ALL_SIGNIFICANT)


def _check_common(spec: Any) -> None:
    """Validate the fields a worker and a supervisor share as children."""
    if not isinstance(spec.id, str) or not spec.id or "/" in spec.id:
        raise ValueError(f"child id must be a non-empty string without '/', got {spec.id!r}")
    if spec.restart not in RESTART_TYPES:
        raise ValueError(f"restart must be one of {RESTART_TYPES}, got {spec.restart!r}")
    shutdown = spec.shutdown
    if shutdown != BRUTAL_KILL:
        if isinstance(shutdown, bool) or not isinstance(shutdown, (int, float)) \
                or math.isnan(shutdown) or shutdown < 0:
            raise ValueError("shutdown must be a timeout in seconds >= 0 (math.inf allowed) "
                             f"or {BRUTAL_KILL!r}, got {shutdown!r}")
    if spec.significant and spec.restart == PERMANENT:
        raise ValueError(f"child {spec.id!r}: a permanent child cannot be significant "
                         "(it never terminates for good)")


@dataclass(frozen=True)
class ChildSpec:
    """How to start, restart and stop one worker process.

    Parameters
    ----------
    id : str
        Name of the child, unique within its supervisor (no ``/``: supervisor
        names are paths joined with ``/``).
    target : callable
        Top-level function run in the child process as ``target(*args,
        **kwargs)``. Returning (or ``sys.exit(0)``) is a normal exit; an
        uncaught exception is exit code 1; ``sys.exit(n)`` is exit code ``n``.
    args : tuple, optional
        Positional arguments. Under ``simple_one_for_one`` this spec is a
        template and the arguments given to ``Supervisor.start_child`` are
        appended to these (as in OTP).
    kwargs : mapping, optional
        Keyword arguments.
    restart : {"permanent", "transient", "temporary"}, optional
        ``permanent`` children are always restarted, ``transient`` ones only
        after an abnormal exit (non-zero exit code, death by a signal the
        supervisor did not send, heartbeat timeout), ``temporary`` ones never.
        Default ``permanent``.
    shutdown : float or "brutal_kill", optional
        How the supervisor stops the child: send SIGTERM, wait up to this many
        seconds, then SIGKILL (``math.inf`` waits for ever); or
        ``"brutal_kill"``: SIGKILL at once. Default 5.0 s, OTP's 5000 ms.
    heartbeat_timeout : float or None, optional
        When set, the child must call `supervisor.heartbeat` at least this
        often (seconds); one that stays silent longer is considered hung,
        killed and handled as an abnormal exit with reason
        ``"heartbeat timeout"``. The clock starts just before ``target`` is
        called (process start-up before that is allowed
        `supervisor.process.STARTUP_TIMEOUT`), so slow set-up inside the
        target (compilation, loading data) must beat too or fit in the
        timeout. A child may promise a later beat, ``heartbeat(within=s)``:
        the timeout is then a floor. None (the default) disables it.
    significant : bool, optional
        Counts for the supervisor's ``auto_shutdown`` (OTP's significant
        child). Not allowed for permanent children. Default False.
    """

    id: str
    target: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: str = PERMANENT
    shutdown: Union[float, str] = 5.0
    heartbeat_timeout: float | None = None
    significant: bool = False
    start_method: str = "spawn"

    def __post_init__(self) -> None:
        _check_common(self)
        if self.start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"child {self.id!r}: start_method must be one of "
                             f"{multiprocessing.get_all_start_methods()}, got "
                             f"{self.start_method!r}")
        if not callable(self.target):
            raise TypeError(f"child {self.id!r}: target must be callable, got {self.target!r}")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        if self.heartbeat_timeout is not None and not self.heartbeat_timeout > 0:
            raise ValueError(f"child {self.id!r}: heartbeat_timeout must be > 0 or None")


@dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor: its children, restart strategy and restart intensity.

    Used to start a top-level `Supervisor`, and also as a child spec, in which
    case the child is a supervisor running in its own OS process (a subtree).

    Parameters
    ----------
    id : str
        Name; a nested supervisor's events carry the path of ids from the
        root, e.g. ``"run/chains"``.
    children : sequence of ChildSpec or SupervisorSpec
        Started in this order, stopped in reverse order. Under
        ``simple_one_for_one`` exactly one ChildSpec, the template for the
        children added later with ``start_child``.
    strategy : str, optional
        ``one_for_one`` (default): only the child that exited is restarted.
        ``one_for_all``: the other children are stopped (reverse start order)
        and all are restarted. ``rest_for_one``: the children started after
        the one that exited are stopped, then it and they are restarted.
        ``simple_one_for_one``: one_for_one over many dynamic children of one
        template, stopped in parallel.
    max_restarts, max_seconds : int, float, optional
        Restart intensity, exactly as OTP's ``intensity`` and ``period``: if a
        restart would make more than ``max_restarts`` restarts within the last
        ``max_seconds`` seconds, the supervisor gives up instead: it stops all
        its children and terminates with a failure (an exception-free status
        for the caller of a top-level supervisor, an abnormal exit seen by the
        parent of a nested one).

        The defaults, 3 restarts in 60 s, are chosen for MCMC chains rather
        than OTP's 1 in 5 s (which assumes restarts that cost microseconds).
        A chain that hits a numerical failure can usually resume from its last
        draw with fresh randomness, so a few restarts are worth trying; a chain
        that crashes more than three times within a minute is failing for a
        systematic reason (a bad model or initialisation) and restarting it
        only burns CPU and hides the error. A minute is long compared with a
        restart (spawn plus loading cached kernels: about a second), so a
        crash loop is caught even when each attempt survives a few seconds,
        while rare isolated crashes in a run of hours never add up.
    auto_shutdown : {"never", "any_significant", "all_significant"}, optional
        OTP's automatic shutdown: terminate normally when any / all
        significant children have exited for good. Default ``never``.
    restart, shutdown, significant : optional
        Used when this spec is a child of another supervisor, with the meaning
        of `ChildSpec`. ``shutdown`` defaults to 30 s: it must cover the
        subtree's own shutdown. Unlike OTP, a finite value is safe here: a
        supervisor process killed at the timeout takes its children with it
        (they watch their parent), so nothing is orphaned.
    """

    id: str = "supervisor"
    children: tuple = ()
    strategy: str = ONE_FOR_ONE
    max_restarts: int = 3
    max_seconds: float = 60.0
    auto_shutdown: str = NEVER
    restart: str = PERMANENT
    shutdown: Union[float, str] = 30.0
    significant: bool = False

    def __post_init__(self) -> None:
        _check_common(self)
        children = tuple(self.children)
        object.__setattr__(self, "children", children)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) \
                or self.max_restarts < 0:
            raise ValueError(f"max_restarts must be an integer >= 0, got {self.max_restarts!r}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds!r}")
        if self.auto_shutdown not in AUTO_SHUTDOWNS:
            raise ValueError(f"auto_shutdown must be one of {AUTO_SHUTDOWNS}, "
                             f"got {self.auto_shutdown!r}")
        for child in children:
            if not isinstance(child, (ChildSpec, SupervisorSpec)):
                raise TypeError(f"children must be ChildSpec or SupervisorSpec, got {child!r}")
            if child.significant and self.auto_shutdown == NEVER:
                raise ValueError(f"child {child.id!r} is significant but supervisor "
                                 f"{self.id!r} has auto_shutdown='never'")
        ids = [child.id for child in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {ids}")
        if self.strategy == SIMPLE_ONE_FOR_ONE and len(children) != 1:
            raise ValueError("simple_one_for_one takes exactly one child spec (the template), "
                             f"got {len(children)}")
        if self.strategy == SIMPLE_ONE_FOR_ONE and not isinstance(children[0], ChildSpec):
            raise TypeError("the simple_one_for_one template must be a ChildSpec")
