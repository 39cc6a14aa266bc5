"""Ops with a body: loop-carried recursions (``scan``) and ODE solutions (``ode_solve``) as plain data.

A body is an expression graph over numbered placeholder leaves ``arg`` (no
variable references: ``exmc.math.scan`` hoists every outside value into an
argument), so a model that uses one still serialises to msgpack and crosses
machines as data.  The body is the op's value (``Recursion`` or ``OdeSpec``);
``exmc/ir/serialize.py`` writes its nodes into the variable's node table.

Placeholders, by position:

- ``scan`` (``Recursion``): 0 the carried state, 1..S one row of each sequence
  at step t, then each non-sequence (a parameter seen whole at every step).
  The result stacks the states after each step: shape (steps, *state shape).
- ``ode_solve`` (``OdeSpec``): 0 the time t, 1 the state y (n,), then each
  parameter.  The op's arguments are (y0, t0, times, *params); the result is
  the solution at ``times``, shape (len(times), n).

This module gives both ops their shape rules and NumPy values (``ops.py``
declares them); the compiler writes them as loops in ``exmc/compiler/emit.py``.
The ODE's NumPy value runs the very algorithm the compiled code runs
(Dormand & Prince's 5(4) pair with an error-per-step controller, stepping
exactly onto every output time), so the two agree to rounding; tests check both
against ``scipy.integrate.solve_ivp``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Recursion(NamedTuple):
    """Value of a ``scan`` node: state_t = body(state_{t-1}, rows of the sequences at t, *non-sequences)."""

    body: object  # Expr over ``arg`` leaves
    sequences: int  # how many of the op's arguments after the initial state are sequences
    steps: int | None  # number of steps when there is no sequence (else the sequences' length)


class OdeSpec(NamedTuple):
    """Value of an ``ode_solve`` node: dy/dt = body(t, y, *params), solved by adaptive RK45."""

    body: object  # Expr over ``arg`` leaves
    rtol: float
    atol: float
    max_steps: int  # most step attempts (accepted or rejected) of one solve


BODY_OPS = ("scan", "ode_solve")
# Most elements of one value inside a body, and of an ODE's stored trajectory
# ((max_steps + 1) * len(y0)): a model read from the wire cannot ask for more scratch.
MAX_BODY_ELEMENTS = 2**28


def body_shape(body, arg_shapes, where):
    """Shape of ``body`` when its placeholders have ``arg_shapes``; ``OpError`` if it does not fit."""
    from exmc.ir.expr import postorder
    from exmc.ir.ops import OpError, op_shape
    memo = {}
    for node in postorder(body):
        if node.op == "const":
            shape = np.shape(node.value)
        elif node.op == "arg":
            if not (isinstance(node.value, int) and 0 <= node.value < len(arg_shapes)):
                raise OpError(f"{where}: the body uses argument {node.value!r} but has "
                              f"{len(arg_shapes)} arguments")
            shape = tuple(arg_shapes[node.value])
        elif node.op in ("ref", "value", "dslvar"):
            raise OpError(f"{where}: a recursion or ODE body may use its arguments and constants "
                          f"only (found {node!r}); pass other values as non-sequences")
        else:
            shape = op_shape(node.op, [memo[id(a)] for a in node.args], node.value, where)
        if math.prod(shape) > MAX_BODY_ELEMENTS:
            raise OpError(f"{where}: a value of the body has shape {tuple(shape)}, more than "
                          f"{MAX_BODY_ELEMENTS} elements")
        memo[id(node)] = shape
    return memo[id(body)]


def evaluate_body(body, arg_values):
    """NumPy value of ``body`` with its placeholders set to ``arg_values``."""
    from exmc.ir.expr import postorder
    from exmc.ir.ops import evaluate_op
    results = {}
    for node in postorder(body):
        if node.op == "const":
            out = node.value
        elif node.op == "arg":
            out = arg_values[node.value]
        else:
            out = evaluate_op(node.op, [results[id(a)] for a in node.args], node.value)
        results[id(node)] = out
    return np.asarray(results[id(body)], dtype=float)


# ---- scan ------------------------------------------------------------------------------------
def scan_steps(shapes, spec: Recursion, where):
    """Number of steps of a scan with argument ``shapes`` (checked)."""
    from exmc.ir.ops import OpError
    seqs = shapes[1:1 + spec.sequences]
    if any(len(s) == 0 for s in seqs):
        raise OpError(f"{where}: scan sequences must be arrays (one row per step), got shapes {seqs}")
    lengths = {s[0] for s in seqs}
    if len(lengths) > 1:
        raise OpError(f"{where}: scan sequences have different lengths {sorted(lengths)}")
    if spec.steps is not None and lengths and lengths != {spec.steps}:
        raise OpError(f"{where}: n_steps={spec.steps} but the sequences have length {lengths.pop()}")
    steps = lengths.pop() if lengths else spec.steps
    if not isinstance(steps, int) or steps < 1:
        raise OpError(f"{where}: a scan needs at least one step (sequences or n_steps >= 1)")
    return steps


def scan_arg_shapes(shapes, spec: Recursion):
    """Shapes of the body's placeholders: the state, one row per sequence, the non-sequences."""
    seqs = shapes[1:1 + spec.sequences]
    return [shapes[0]] + [s[1:] for s in seqs] + list(shapes[1 + spec.sequences:])


def scan_shape(shapes, spec, where):
    from exmc.ir.ops import OpError
    if not isinstance(spec, Recursion) or not isinstance(spec.sequences, int) \
            or not 0 <= spec.sequences < len(shapes):
        raise OpError(f"{where}: malformed scan")
    steps = scan_steps(shapes, spec, where)
    out = body_shape(spec.body, scan_arg_shapes(shapes, spec), where)
    if tuple(out) != tuple(shapes[0]):
        raise OpError(f"{where}: the scan body returns shape {tuple(out)} but the state "
                      f"(init) has shape {tuple(shapes[0])}; they must be equal")
    return (steps,) + tuple(shapes[0])


def scan_numpy(args, spec: Recursion):
    state = np.asarray(args[0], dtype=float)
    seqs, params = args[1:1 + spec.sequences], list(args[1 + spec.sequences:])
    steps = scan_steps([np.shape(a) for a in args], spec, "scan")
    out = np.empty((steps,) + state.shape)
    for t in range(steps):
        state = evaluate_body(spec.body, [state] + [s[t] for s in seqs] + params)
        out[t] = state
    return out


# ---- ode_solve -------------------------------------------------------------------------------
# Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae": nodes C, matrix A
# (row s: the weights of stages 0..s-1), 5th-order weights B, error weights E = B - B*.
DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
DP_A = ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
DP_E = tuple(b - bs for b, bs in zip(DP_B, (5179 / 57600, 0.0, 7571 / 16695, 393 / 640,
                                              -92097 / 339200, 187 / 2100, 1 / 40)))
STAGES = 7
# The step-size controller: h * clip(SAFETY * err^(-1/5), SHRINK, GROW).
SAFETY, SHRINK, GROW = 0.9, 0.2, 5.0


def dp_tableau():
    """The Dormand-Prince coefficients as one flat array: A (7x7, row major), B, E, C."""
    a = np.zeros((STAGES, STAGES))
    for s, row in enumerate(DP_A):
        a[s, :len(row)] = row
    return np.concatenate([a.ravel(), DP_B, DP_E, DP_C])


def initial_step(t0, last):
    """First trial step: a hundredth of the span (the controller corrects it within a few tries)."""
    span = last - t0
    return 0.01 * span if span > 0.0 else 1.0


def ode_shape(shapes, spec, where):
    from exmc.ir.ops import OpError
    if not isinstance(spec, OdeSpec) or len(shapes) < 3:
        raise OpError(f"{where}: malformed ode_solve")
    y0, t0, times = shapes[:3]
    if len(y0) != 1 or t0 != () or len(times) != 1:
        raise OpError(f"{where}: ode_solve needs a 1-d initial state y0, a scalar t0 and 1-d times, "
                      f"got shapes {y0}, {t0} and {times}")
    if not (spec.rtol > 0.0 and spec.atol > 0.0 and isinstance(spec.max_steps, int)
            and spec.max_steps >= 1):
        raise OpError(f"{where}: ode_solve needs rtol > 0, atol > 0 and max_steps >= 1")
    if not times[0] >= 1:
        raise OpError(f"{where}: ode_solve needs at least one output time")
    if (spec.max_steps + 1) * max(y0[0], 1) > MAX_BODY_ELEMENTS:
        raise OpError(f"{where}: max_steps={spec.max_steps} would store more than "
                      f"{MAX_BODY_ELEMENTS} values of the trajectory")
    out = body_shape(spec.body, [(), y0] + list(shapes[3:]), where)
    if tuple(out) != tuple(y0):
        raise OpError(f"{where}: the ODE right-hand side returns shape {tuple(out)} but the state "
                      f"y0 has shape {tuple(y0)}; they must be equal")
    return (times[0], y0[0])


def check_times(t0, times, where):
    """``times`` must be finite, non-decreasing and not before ``t0``."""
    from exmc.ir.ops import OpError
    t0, times = float(t0), np.asarray(times, dtype=float)
    if not (np.isfinite(t0) and np.all(np.isfinite(times)) and np.all(np.diff(times) >= 0.0)
            and (times.size == 0 or times[0] >= t0)):
        raise OpError(f"{where}: ode_solve needs finite, non-decreasing output times from t0 = "
                      f"{t0:g} on")


def dp45_solve(rhs, y0, t0, times, rtol, atol, max_steps):
    """Solution of dy/dt = rhs(t, y) at ``times``: the algorithm the compiled code runs.

    Returns the (len(times), n) solution, or NaN rows from the first output not
    reached within ``max_steps`` step attempts or where the solution stops being finite.
    """
    y, t = np.array(y0, dtype=float), float(t0)
    n, out = y.size, np.full((len(times), y.size), np.nan)
    h, attempts = initial_step(t, float(times[-1]) if len(times) else t), 0
    k = np.empty((STAGES, n))
    for j, end in enumerate(times):
        while t < end:
            if attempts >= max_steps:
                return out
            attempts += 1
            hh = min(h, end - t)
            for s in range(STAGES):
                ys = y.copy()
                for m, a in enumerate(DP_A[s]):
                    ys += hh * a * k[m]
                k[s] = rhs(t + DP_C[s] * hh, ys)
            ynew, err = y.copy(), np.zeros(n)
            for s in range(STAGES):
                ynew += hh * DP_B[s] * k[s]
                err += hh * DP_E[s] * k[s]
            norm = math.sqrt(np.mean((err / (atol + rtol * np.maximum(abs(y), abs(ynew)))) ** 2))
            if not norm <= 1e300:
                return out
            if norm <= 1.0:
                t = end if hh == end - t else t + hh
                y = ynew
            h = hh * (GROW if norm == 0.0 else min(GROW, max(SHRINK, SAFETY * norm ** -0.2)))
        out[j] = y
    return out


def ode_numpy(args, spec: OdeSpec):
    y0, t0, times = args[:3]
    params = list(args[3:])
    check_times(t0, times, "ode_solve")
    return dp45_solve(lambda t, y: evaluate_body(spec.body, [np.float64(t), y] + params),
                      y0, t0, times, spec.rtol, spec.atol, spec.max_steps)
