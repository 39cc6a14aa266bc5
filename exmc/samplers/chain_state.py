"""A chain's whole state as plain data: what a worker sends after each block, what a
checkpoint keeps, what a node is handed to resume a chain.

``pack_state`` turns a ``ChainState`` (``exmc.samplers.nuts``) and the chain's random
generator into a msgpack-able map: each array with its shape, each scalar under its
name (``SCALAR_FIELDS``), the generator's 128-bit state as decimal text.
``unpack_state`` reverses it exactly, so a chain continued from the map makes the draws
it would have made without the stop.
"""
from __future__ import annotations

import numpy as np

from exmc.samplers import nuts
from exmc.samplers.integrators import Metric
from exmc.samplers.nuts import N_SCALARS, ChainState

STATE_ARRAYS = ("position", "grad", "window_mean", "window_m2", "gradient_windows")
METRIC_ARRAYS = ("inverse_diag", "inverse_dense", "momentum_factor")
# ChainState.scalars, slot by slot: the sampler reads them by the indices in nuts.py.
SCALAR_FIELDS = (
    "iteration",                  # nuts.ITERATION: iterations done, warmup included
    "logp",                       # nuts.LOGP: log density at the position
    "step_size",                  # nuts.STEP
    "dual_mu",                    # nuts.DUAL: dual averaging's centre, log(10 * step size)
    "dual_error_mean",            #   its running mean of (target - acceptance)
    "dual_log_step_mean",         #   its running mean of log step size (the final step)
    "dual_count",                 #   its number of updates
    "window_count",               # nuts.WINDOW_COUNT: draws in the metric window so far
    "gradient_foreground_count",  # nuts.FG_COUNT: adaptation="gradient"'s two windows
    "gradient_background_count",  # nuts.BG_COUNT
    "gradient_window",            # nuts.GRAD_WINDOW: its current window length
    "metric_changed",             # nuts.METRIC_CHANGED: 1 once its metric left the unit one
)
assert len(SCALAR_FIELDS) == N_SCALARS
assert (SCALAR_FIELDS.index("iteration"), SCALAR_FIELDS.index("logp"),
        SCALAR_FIELDS.index("step_size"), SCALAR_FIELDS.index("dual_mu"),
        SCALAR_FIELDS.index("window_count"), SCALAR_FIELDS.index("metric_changed")) == (
    nuts.ITERATION, nuts.LOGP, nuts.STEP, nuts.DUAL.start, nuts.WINDOW_COUNT,
    nuts.METRIC_CHANGED)


def _pack_array(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "bytes": a.tobytes()}


def _unpack_array(obj):
    return np.frombuffer(obj["bytes"], dtype=np.float64).reshape(obj["shape"]).copy()


def pack_state(state: ChainState, rng) -> dict:
    """Plain-data snapshot of a chain: its arrays, its named scalars and its generator's state
    (big integers as text)."""
    rs = rng.bit_generator.state
    return {"arrays": {k: _pack_array(getattr(state, k)) for k in STATE_ARRAYS},
            "scalars": {name: float(v) for name, v in zip(SCALAR_FIELDS, state.scalars)},
            "metric": {k: _pack_array(getattr(state.metric, k)) for k in METRIC_ARRAYS},
            "dense": bool(state.metric.dense),
            "rng": {"state": str(rs["state"]["state"]), "inc": str(rs["state"]["inc"]),
                    "has_uint32": int(rs["has_uint32"]), "uinteger": int(rs["uinteger"])}}


def unpack_state(obj):
    """(ChainState, Generator) from ``pack_state``'s output."""
    arrays = {k: _unpack_array(obj["arrays"][k]) for k in STATE_ARRAYS}
    missing = [name for name in SCALAR_FIELDS if name not in obj["scalars"]]
    if missing:
        raise ValueError(f"the state's scalars lack {', '.join(missing)}")
    scalars = np.array([float(obj["scalars"][name]) for name in SCALAR_FIELDS])
    metric = Metric(*(_unpack_array(obj["metric"][k]) for k in METRIC_ARRAYS), bool(obj["dense"]))
    state = ChainState(arrays["position"], arrays["grad"], scalars, metric,
                       arrays["window_mean"], arrays["window_m2"], arrays["gradient_windows"])
    rng = np.random.Generator(np.random.PCG64())
    r = obj["rng"]
    rng.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": int(r["state"]), "inc": int(r["inc"])},
                               "has_uint32": int(r["has_uint32"]), "uinteger": int(r["uinteger"])}
    return state, rng


def iteration_of(packed) -> int:
    """Iterations a packed state has done (read without unpacking its arrays)."""
    return int(packed["scalars"]["iteration"])
