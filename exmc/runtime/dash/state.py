"""The dashboard's view of a stream: the watcher's folded state plus each chain's recent draws, as JSON.

``DashState`` is ``exmc.runtime.watch.WatchState`` (per-chain counts, phases, divergences,
missed messages; running mean and sd; split R-hat and bulk ESS) with one more thing folded
in per message: a ring of each chain's last ``trace_window`` draws, warmup included, holding
the iteration, the warmup and divergence flags and the first ``max_trace_elements`` values of
the point (C order, variables in the order of the point).  ``snapshot`` turns both into the
JSON document the page draws, with the plots' data already reduced on the server:

* trace: every chain's recent draws of one element on a shared iteration axis, decimated to
  at most ``max_points`` x positions (per bucket of iterations, the minimum and the maximum,
  so spikes survive); divergent draws as their own series of markers;
* histogram: post-warmup draws in the window, shared bins, a density per chain;
* for a variable with more than one element, a compact summary of all tracked elements
  (mean +- sd over the window's post-warmup draws, chains pooled).

No sockets and no threads here; ``exmc.runtime.dash.server`` locks around it.
"""
from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from exmc.runtime import protocol
from exmc.runtime.watch import WatchState

DEFAULT_TRACE_WINDOW = 1000
DEFAULT_MAX_POINTS = 400
DEFAULT_BINS = 30
DEFAULT_MAX_TRACE_ELEMENTS = 512
DEFAULT_QUIET = 5.0


class Layout:
    """Where each traced variable's elements sit in a draw's flat value vector."""

    def __init__(self, point: dict, max_variables: int, max_elements: int):
        self.entries = []           # (name, shape, offset, number of elements traced)
        offset = 0
        for name, value in list(point.items())[:max_variables]:
            shape = np.shape(value)
            size = math.prod(shape)
            traced = min(size, max_elements - offset)
            if traced <= 0:
                break
            self.entries.append((name, shape, offset, traced))
            offset += traced
        self.total = offset

    def flatten(self, point: dict) -> np.ndarray | None:
        """The traced values of a point, or None if it does not fit this layout."""
        flat = np.empty(self.total)
        for name, shape, offset, traced in self.entries:
            value = point.get(name)
            if value is None:
                return None
            if not shape:
                if isinstance(value, list):
                    return None
                flat[offset] = value
            else:
                array = np.asarray(value, dtype=float)
                if array.shape != shape:
                    return None
                flat[offset:offset + traced] = array.reshape(-1)[:traced]
        return flat


class DashState(WatchState):
    """``WatchState`` plus each chain's recent draws, and the snapshot the page draws.

    Parameters beyond ``WatchState``'s
    ----------------------------------
    trace_window : int
        Draws (warmup included) kept per chain for the trace plots and histograms.
    max_points : int
        Most x positions of a trace plot sent to the page.
    bins : int
        Histogram bins.
    max_trace_elements : int
        Values kept per draw, over all variables (memory: chains x trace_window x this
        x 8 bytes at most).
    expected_chains : int, optional
        Chains per run: the run counts as ended once that many are done.  Without it, once
        every chain seen is done and ``grace`` seconds passed without a message.
    quiet : float
        Seconds without any message after which the page says the stream is silent.
    """

    def __init__(self, run=None, trace_window=DEFAULT_TRACE_WINDOW, max_points=DEFAULT_MAX_POINTS,
                 bins=DEFAULT_BINS, max_trace_elements=DEFAULT_MAX_TRACE_ELEMENTS,
                 expected_chains=None, grace=1.0, quiet=DEFAULT_QUIET, clock=time.monotonic,
                 **watch_options):
        watch_options.setdefault("diagnostics_interval", 1.0)
        super().__init__(run=run, clock=clock, **watch_options)
        if trace_window < 2 or max_points < 4 or bins < 1 or max_trace_elements < 1:
            raise ValueError("trace_window >= 2, max_points >= 4, bins >= 1, max_trace_elements >= 1")
        self.trace_window, self.max_points, self.bins = int(trace_window), int(max_points), int(bins)
        self.max_trace_elements = int(max_trace_elements)
        self.expected_chains, self.grace, self.quiet = expected_chains, grace, quiet
        self.recent: dict[tuple[str, int], deque] = {}  # (run, chain) -> (i, warmup, diverging, flat)
        self.layouts: dict[str, Layout] = {}
        self.warmup_end: dict[tuple[str, int], int] = {}  # first post-warmup iteration seen
        self.started_at = clock()
        self._diagnostics_every = self.diagnostics_interval

    def update(self, msg: dict) -> bool:
        if not super().update(msg):
            return False
        if msg["type"] == protocol.SAMPLE:
            self._record(msg)
        return True

    def _record(self, msg):
        run, key = msg["run"], (msg["run"], msg["chain"])
        layout = self.layouts.get(run)
        if layout is None:
            layout = self.layouts[run] = Layout(msg["point"], self.max_variables,
                                                self.max_trace_elements)
        try:
            flat = layout.flatten(msg["point"])
        except (TypeError, ValueError):      # ragged or non-numeric: WatchState counts it for post-warmup
            flat = None
        if flat is None:
            return
        if not msg["warmup"] and key not in self.warmup_end:
            self.warmup_end[key] = msg["i"]
        ring = self.recent.get(key)
        if ring is None:
            ring = self.recent[key] = deque(maxlen=self.trace_window)
        ring.append((msg["i"], msg["warmup"], bool(msg["stats"]["diverging"]), flat))

    # ------------------------------------------------------------------ the page's document
    def snapshot(self, selection: dict | None = None, connection: dict | None = None) -> dict:
        """Everything the page shows, JSON-ready (NaN and infinities as None).

        ``selection`` maps ``"run/name"`` to the flat index of the element to plot (default 0);
        ``connection`` is ``{"address", "connected", "ever_connected"}`` for a subscribed
        dashboard, None for one fed in-process.
        """
        selection = selection or {}
        # Once the run has ended, R-hat and ESS are brought up to date (as the watcher's last
        # frame); they are recomputed only if a draw arrived since.
        if self.ended():
            self.diagnostics_interval = self.diagnostics_cost = 0.0
        else:
            self.diagnostics_interval = self._diagnostics_every
        chains = [{"run": c.run, "chain": c.chain, "phase": c.phase, "warmup_draws": c.warmup_draws,
                   "draws": c.sampling_draws, "divergences": c.divergences,
                   "warmup_divergences": c.warmup_divergences, "step_size": _finite(c.step_size),
                   "tree_depth": c.tree_depth, "acceptance_rate": _finite(c.acceptance_rate),
                   "missed": c.missed, "status": c.status}
                  for c in self.chain_rows()]
        variable_rows = self.variable_rows()
        rows = [{"run": r.run, "label": r.label, "draws": r.draws, "mean": _finite(r.mean),
                 "sd": _finite(r.sd), "rhat": _finite(r.rhat), "ess_bulk": _finite(r.ess_bulk)}
                for r in variable_rows]
        notes = self.notes()
        windows = [r.window for r in variable_rows if r.window and r.window < r.draws / r.chains]
        if windows:
            notes.append(f"R-hat and ESS cover the last {min(windows)} draws of each chain")
        variables = []
        for run, layout in self.layouts.items():
            keys = sorted(k for k in self.recent if k[0] == run)
            draws = {k: _columns(self.recent[k]) for k in keys}
            for name, shape, offset, traced in layout.entries:
                element = _clamp(selection.get(f"{run}/{name}", 0), traced)
                variables.append(self._variable(run, name, shape, offset, traced, element, draws))
        return {"runs": sorted({c["run"] for c in chains}), "messages": self.messages,
                "missed": self.missed(), "bad": self.bad, "last_error": self.last_error,
                "chains": chains, "rows": rows, "notes": notes, "variables": variables,
                "status": self._status(connection), "trace_window": self.trace_window}

    def _variable(self, run, name, shape, offset, traced, element, draws) -> dict:
        size = math.prod(shape)
        label = name if not shape else f"{name}[{','.join(map(str, np.unravel_index(element, shape)))}]"
        per_chain = {k[1]: (it, warm, div, values[:, offset + element])
                     for k, (it, warm, div, values) in draws.items() if len(it)}
        out = {"run": run, "name": name, "shape": list(shape), "size": size, "traced": traced,
               "element": element, "label": label,
               "chains": sorted(per_chain),
               "warmup_end": min((self.warmup_end[(run, c)] for c in per_chain
                                  if (run, c) in self.warmup_end), default=None),
               "trace": _trace(per_chain, self.max_points),
               "histogram": _histogram(per_chain, self.bins)}
        if size > 1:
            out["summary"] = _summary([(warm, values[:, offset:offset + traced])
                                       for it, warm, div, values in draws.values() if len(it)])
        return out

    def ended(self) -> bool:
        """Every chain of every run seen is done (and ``expected_chains`` of them if set)."""
        if not self.finished(self.expected_chains):
            return False
        if self.expected_chains is not None:
            return True
        return self.clock() - (self.last_message_at or self.started_at) >= self.grace

    def _status(self, connection) -> dict:
        """The run's state in words: the banners a reader (or a script) looks for."""
        now = self.clock()
        quiet = now - (self.last_message_at or self.started_at)
        banners = []
        ended = self.ended()
        if ended:
            failed = [f"chain {c.chain}: {c.reason or 'failed'}" for c in self.chain_rows()
                      if c.status == "failed"]
            banners.append({"kind": "ended", "text": "Run ended" + (
                f" with failures ({'; '.join(failed)})" if failed else ": every chain is done")})
        missed = self.missed()
        if missed:
            banners.append({"kind": "missed", "text": f"This viewer missed {missed} messages "
                            "(sequence gaps: it lagged behind the run or joined late); "
                            "counts and plots leave them out"})
        if self.bad:
            banners.append({"kind": "bad", "text": f"{self.bad} malformed messages skipped "
                            f"(last: {self.last_error})"})
        if not ended and quiet >= self.quiet:
            address = connection["address"] if connection else "the stream"
            connected = bool(connection and connection["connected"])
            if not self.messages and connection and not connected:
                text = (f"Nothing is publishing at {address}: the run has ended (or has not "
                        "started yet). This page goes on listening.")
                kind = "absent"
            elif not self.messages and connection is None:
                text = "Waiting for the first draw."
                kind = "waiting"
            elif not self.messages:
                text = (f"No messages from {address} for {quiet:.0f} s: the run ended before "
                        "this dashboard joined, or has not started yet.")
                kind = "silent"
            elif connection and not connected:
                text = (f"The publisher at {address} went away before every chain reported "
                        "the end: the run stopped early, or the connection broke.")
                kind = "gone"
            else:
                text = f"No messages for {quiet:.0f} s."
                kind = "silent"
            banners.append({"kind": kind, "text": text})
        return {"ended": ended, "failed": self.failed(), "quiet_s": round(quiet, 1),
                "connected": None if connection is None else bool(connection["connected"]),
                "address": connection["address"] if connection else None, "banners": banners}


# ----------------------------------------------------------------------- plot data
def _columns(ring) -> tuple:
    """A chain's ring as arrays: iterations, warmup flags, divergence flags, values (n, total)."""
    if not ring:
        return np.zeros(0, int), np.zeros(0, bool), np.zeros(0, bool), np.zeros((0, 0))
    it, warm, div, values = zip(*ring)
    return np.array(it), np.array(warm), np.array(div), np.stack(values)


def _trace(per_chain, max_points) -> dict:
    """Decimated traces on a shared x axis: {"x", "chains": [values per chain], "divergent"}.

    Iterations lo..hi fall in buckets of ``width``; with width 1 each draw is its own point,
    otherwise a bucket gives two x positions (its start and its middle) holding the bucket's
    minimum and maximum.  A chain with no draw in a bucket has None there (a gap).
    """
    if not per_chain:
        return {"x": [], "chains": [], "divergent": []}
    lo = min(int(it[0]) for it, _, _, _ in per_chain.values())
    hi = max(int(it[-1]) for it, _, _, _ in per_chain.values())
    span = hi - lo + 1
    width = 1 if span <= max_points else math.ceil(span / (max_points // 2))
    buckets = math.ceil(span / width)
    slots = 1 if width == 1 else 2
    x = lo + width * np.arange(buckets, dtype=float)
    x = x if slots == 1 else np.column_stack([x, x + width / 2]).ravel()
    divergent = np.full(buckets * slots, np.nan)
    series = []
    for chain in sorted(per_chain):
        it, _, div, values = per_chain[chain]
        k = (it - lo) // width
        if slots == 1:
            y = np.full(buckets, np.nan)
            y[k] = values
        else:
            low, high = np.full(buckets, np.inf), np.full(buckets, -np.inf)
            np.minimum.at(low, k, values)
            np.maximum.at(high, k, values)
            y = np.column_stack([low, high]).ravel()
        series.append(_list(y))
        divergent[k[div] * slots] = values[div]
    return {"x": _list(x), "chains": series, "divergent": _list(divergent)}


def _histogram(per_chain, bins) -> dict:
    """Post-warmup density per chain on shared bins: {"edges", "chains": [density per chain]}.

    Each chain's list has one value per edge (the last repeats the last bin) for a stepped line.
    """
    kept = {c: values[~warm] for c, (_, warm, _, values) in per_chain.items()}
    kept = {c: v[np.isfinite(v)] for c, v in kept.items()}
    pooled = np.concatenate(list(kept.values())) if kept else np.zeros(0)
    if pooled.size < 2:
        return {"edges": [], "chains": []}
    edges = np.histogram_bin_edges(pooled, bins=bins)
    series = []
    for chain in sorted(kept):
        v = kept[chain]
        if v.size:
            density, _ = np.histogram(v, bins=edges, density=True)
        else:
            density = np.full(len(edges) - 1, np.nan)
        series.append(_list(np.append(density, density[-1])))
    return {"edges": _list(edges), "chains": series}


def _summary(chains) -> dict:
    """Mean and sd per traced element over the window's post-warmup draws, chains pooled."""
    kept = [values[~warm] for warm, values in chains]
    kept = np.concatenate(kept) if kept else np.zeros((0, 0))
    if len(kept) < 2:
        return {"mean": [], "sd": []}
    with np.errstate(all="ignore"):
        mean, sd = np.nanmean(kept, axis=0), np.nanstd(kept, axis=0, ddof=1)
    return {"mean": _list(mean), "sd": _list(sd)}


def _clamp(value, size) -> int:
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 0
    return min(max(value, 0), size - 1)


def _finite(x):
    return float(x) if x is not None and math.isfinite(x) else None


def _list(array) -> list:
    """A float array as a JSON list; NaN and infinities become None (gaps in the plots)."""
    array = np.asarray(array, dtype=float)
    return np.where(np.isfinite(array), array, None).tolist()
