"""Child and supervisor specifications: defaults and validation (no processes)."""
import math

import pytest

from supervisor import (ALL_SIGNIFICANT, BRUTAL_KILL, ONE_FOR_ONE, PERMANENT, SIMPLE_ONE_FOR_ONE,
                        TEMPORARY, TRANSIENT, ChildSpec, SupervisorSpec)
from tests.supervisor import children


def test_defaults():
    child = ChildSpec("w", children.sleep_forever, ["d", "n"])
    assert (child.args, child.kwargs, child.restart, child.shutdown, child.heartbeat_timeout) == \
        (("d", "n"), {}, PERMANENT, 5.0, None)
    spec = SupervisorSpec("s", [child])
    assert (spec.strategy, spec.max_restarts, spec.max_seconds, spec.shutdown) == \
        (ONE_FOR_ONE, 3, 60.0, 30.0)
    assert spec.children == (child,)


@pytest.mark.parametrize("options", [
    {"restart": "sometimes"},
    {"shutdown": -1},
    {"shutdown": "gently"},
    {"shutdown": True},
    {"heartbeat_timeout": 0},
    {"significant": True},                      # permanent children cannot be significant
    {"start_method": "clone"},                  # not one of multiprocessing's
])
def test_invalid_child_specs(options):
    with pytest.raises(ValueError):
        ChildSpec("w", children.sleep_forever, **options)


def test_child_spec_needs_a_callable_and_a_plain_id():
    with pytest.raises(TypeError):
        ChildSpec("w", "not callable")
    for bad in ("", "a/b", 3):
        with pytest.raises(ValueError):
            ChildSpec(bad, children.sleep_forever)


def test_valid_shutdowns():
    for shutdown in (0, 2.5, math.inf, BRUTAL_KILL):
        assert ChildSpec("w", children.sleep_forever, shutdown=shutdown).shutdown == shutdown


def test_invalid_supervisor_specs():
    child = ChildSpec("w", children.sleep_forever)
    with pytest.raises(ValueError):
        SupervisorSpec("s", [child, child])                       # duplicate ids
    with pytest.raises(ValueError):
        SupervisorSpec("s", [child], strategy="one_for_some")
    with pytest.raises(ValueError):
        SupervisorSpec("s", [child], max_restarts=-1)
    with pytest.raises(ValueError):
        SupervisorSpec("s", [child], max_seconds=0)
    with pytest.raises(ValueError):
        SupervisorSpec("s", [child, ChildSpec("v", children.sleep_forever)],
                       strategy=SIMPLE_ONE_FOR_ONE)               # one template only
    with pytest.raises(TypeError):
        SupervisorSpec("s", [SupervisorSpec("t")], strategy=SIMPLE_ONE_FOR_ONE)
    with pytest.raises(TypeError):
        SupervisorSpec("s", ["not a spec"])
    significant = ChildSpec("c", children.sleep_forever, restart=TRANSIENT, significant=True)
    with pytest.raises(ValueError):
        SupervisorSpec("s", [significant])                        # auto_shutdown="never"
    assert SupervisorSpec("s", [significant], auto_shutdown=ALL_SIGNIFICANT)


def test_supervisor_spec_as_a_child():
    inner = SupervisorSpec("inner", [ChildSpec("w", children.sleep_forever)],
                           restart=TEMPORARY, shutdown=BRUTAL_KILL)
    outer = SupervisorSpec("outer", [inner])
    assert outer.children[0].restart == TEMPORARY
