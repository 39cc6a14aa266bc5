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
    """Value of an ``ode_solve`` node: dy/dt = body(t, y, *params), solved by ``method``."""

    body: object  # Expr over ``arg`` leaves
    rtol: float
    atol: float
    max_steps: int  # most step attempts (accepted or rejected) of one solve
    method: str = "rk45"  # one of ODE_METHODS


# "rk45": explicit Dormand-Prince 5(4); "sdirk4": L-stable singly diagonally implicit
# Runge-Kutta of order 4 (for stiff systems).  ``exmc.math.ode_solve`` also takes "bdf"
# for the stiff one (the name the issue and Stan use); it is not a BDF and is stored as "sdirk4".
ODE_METHODS = ("rk45", "sdirk4")
ODE_ALIASES = {"bdf": "sdirk4"}


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
    if spec.method not in ODE_METHODS:
        raise OpError(f"{where}: unknown ode_solve method {spec.method!r}; the methods are "
                      f"{', '.join(ODE_METHODS)}")
    if (spec.max_steps + 1) * max(y0[0], 1) * stored_rows(spec.method) > MAX_BODY_ELEMENTS:
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
    reached within ``max_steps`` step attempts or where the solution stops being finite,
    and the number of step attempts.
    """
    y, t = np.array(y0, dtype=float), float(t0)
    n, out = y.size, np.full((len(times), y.size), np.nan)
    h, attempts = initial_step(t, float(times[-1]) if len(times) else t), 0
    k = np.empty((STAGES, n))
    for j, end in enumerate(times):
        while t < end:
            if attempts >= max_steps:
                return out, attempts
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
                return out, attempts
            if norm <= 1.0:
                t = end if hh == end - t else t + hh
                y = ynew
            h = hh * (GROW if norm == 0.0 else min(GROW, max(SHRINK, SAFETY * norm ** -0.2)))
        out[j] = y
    return out, attempts


def ode_numpy(args, spec: OdeSpec):
    y0, t0, times = args[:3]
    params = list(args[3:])
    check_times(t0, times, "ode_solve")
    solve = sdirk4_solve if spec.method == "sdirk4" else dp45_solve
    with np.errstate(all="ignore"):  # a too-long trial step may overflow; it is then rejected
        return solve(lambda t, y: evaluate_body(spec.body, [np.float64(t), y] + params),
                     y0, t0, times, spec.rtol, spec.atol, spec.max_steps)[0]


# ---- the stiff method: SDIRK4 -----------------------------------------------------------------
# Hairer & Wanner, "Solving Ordinary Differential Equations II", section IV.6, table 6.5: the
# L-stable, stiffly accurate SDIRK method of order 4 with gamma = 1/4 and an embedded
# order-3 solution.  Stage i solves Z_i = h sum_{j<=i} A_ij f(t + C_j h, y + Z_j) and the
# step's result is y + Z_5 (B is A's last row).  SD_E = B - B_hat weighs the error estimate.
SD_GAMMA = 0.25
SD_C = (1 / 4, 3 / 4, 11 / 20, 1 / 2, 1.0)
SD_A = ((1 / 4,), (1 / 2, 1 / 4), (17 / 50, -1 / 25, 1 / 4),
        (371 / 1360, -137 / 2720, 15 / 544, 1 / 4),
        (25 / 24, -49 / 48, 125 / 16, -85 / 12, 1 / 4))
SD_B_HAT = (59 / 48, -17 / 96, 225 / 32, -85 / 12, 0.0)
SD_E = tuple(b - bh for b, bh in zip(SD_A[-1], SD_B_HAT))
SD_STAGES = 5
# Newton's iteration on each stage stops when its correction, relative to atol + rtol * |y|
# (root mean square), is below NEWTON_TOL, or below NEWTON_FLOOR and no longer halving
# (rounding): the stages are solved to rounding, so the gradient (the implicit function
# theorem's, exact for exactly solved stages) is the computed solution's.  A stage that
# does not converge within NEWTON_ITERS iterations rejects the step (h * NEWTON_SHRINK).
NEWTON_TOL, NEWTON_FLOOR, NEWTON_ITERS, NEWTON_SHRINK = 1e-10, 1e-5, 20, 0.25
# SDIRK4's error estimate is of order 3: the controller's exponent is -1/4.
SD_EXPONENT = -0.25
# The forward-difference Jacobian's step for component c: sqrt(machine epsilon) times
# max(|y_c|, atol / rtol), the scale below which a component counts as small: a step
# far larger than a tiny component (Robertson's y2 ~ 1e-10) spoils its column.
JACOBIAN_STEP = 1.4901161193847656e-08


def stored_rows(method):
    """Values of the trajectory stored per accepted step, in units of len(y0)."""
    return 1 + SD_STAGES if method == "sdirk4" else 1


def lu_factor(a):
    """In-place LU with partial pivoting (the compiled code's loop order); pivots, or None if singular."""
    n = a.shape[0]
    piv = np.arange(n)
    for c in range(n):
        p = c + int(np.argmax(np.abs(a[c:, c])))
        if not abs(a[p, c]) > 0.0:  # zero or NaN
            return None
        if p != c:
            a[[c, p]] = a[[p, c]]
        piv[c] = p
        for r in range(c + 1, n):
            a[r, c] /= a[c, c]
            a[r, c + 1:] -= a[r, c] * a[c, c + 1:]
    return piv


def lu_solve(lu, piv, b):
    """x with (the factored matrix) x = b, in place in ``b``."""
    n = lu.shape[0]
    for c in range(n):
        b[c], b[piv[c]] = b[piv[c]], b[c]
    for r in range(n):
        b[r] -= lu[r, :r] @ b[:r]
    for r in range(n - 1, -1, -1):
        b[r] = (b[r] - lu[r, r + 1:] @ b[r + 1:]) / lu[r, r]
    return b


def sdirk4_solve(rhs, y0, t0, times, rtol, atol, max_steps):
    """Solution of dy/dt = rhs(t, y) at ``times`` by adaptive SDIRK4: the compiled code's algorithm.

    The Newton iteration matrix I - h gamma J uses a forward-difference Jacobian at
    the step's start (only the iteration's speed depends on it).  The error estimate
    is filtered through that matrix (Hairer & Wanner IV.8), so stiff components do
    not inflate it.  Returns the solution (NaN rows past a failure, as ``dp45_solve``),
    and the number of step attempts.
    """
    y, t = np.array(y0, dtype=float), float(t0)
    n, out = y.size, np.full((len(times), y.size), np.nan)
    h, attempts = initial_step(t, float(times[-1]) if len(times) else t), 0
    big_z, hk = np.zeros((SD_STAGES, n)), np.zeros((SD_STAGES, n))
    jac = None
    for j, end in enumerate(times):
        while t < end:
            if attempts >= max_steps:
                return out, attempts
            attempts += 1
            hh = min(h, end - t)
            if jac is None:  # once per accepted point: rejected attempts reuse it
                f0 = rhs(t, y)
                jac = np.empty((n, n))
                for c in range(n):
                    yc = y.copy()
                    delta = JACOBIAN_STEP * max(abs(y[c]), atol / rtol)
                    yc[c] += delta
                    jac[:, c] = (rhs(t, yc) - f0) / delta
                if not np.all(np.isfinite(jac)):
                    return out, attempts
            lu = np.eye(n) - hh * SD_GAMMA * jac
            piv = lu_factor(lu)
            ok = piv is not None
            for s in range(SD_STAGES if ok else 0):
                known = np.zeros(n)
                for m in range(s):
                    known += SD_A[s][m] * hk[m]
                # first guess: f at this stage as at the one before (at y for the first)
                big_z[s] = known + SD_GAMMA * (hk[s - 1] if s else hh * f0)
                ok, prev = False, math.inf
                for _ in range(NEWTON_ITERS):
                    f = rhs(t + SD_C[s] * hh, y + big_z[s])
                    d = lu_solve(lu, piv, known + hh * SD_GAMMA * f - big_z[s])
                    big_z[s] += d
                    norm = math.sqrt(np.mean((d / (atol + rtol * np.abs(y + big_z[s]))) ** 2))
                    if not norm <= 1e300:
                        break
                    if norm <= NEWTON_TOL or (norm <= NEWTON_FLOOR and norm > 0.5 * prev):
                        ok = True
                        break
                    if norm > 2.0 * prev:
                        break
                    prev = norm
                if not ok:
                    break
                hk[s] = (big_z[s] - known) / SD_GAMMA
            if not ok:
                h = hh * NEWTON_SHRINK
                continue
            ynew = y + big_z[-1]
            err = lu_solve(lu, piv, sum(SD_E[s] * hk[s] for s in range(SD_STAGES)))
            norm = math.sqrt(np.mean((err / (atol + rtol * np.maximum(abs(y), abs(ynew)))) ** 2))
            if not norm <= 1e300:
                return out, attempts
            if norm <= 1.0:
                t = end if hh == end - t else t + hh
                y, jac = ynew, None
            h = hh * (GROW if norm == 0.0 else min(GROW, max(SHRINK, SAFETY * norm ** SD_EXPONENT)))
        out[j] = y
    return out, attempts
