"""Watch a streaming run from another terminal: per-chain progress and running posterior diagnostics.

``exmc watch ADDRESS`` connects a SUB socket to a publisher made by ``exmc.sample_stream``
(wire format in ``exmc.runtime.protocol`` and docs/protocol.md) and redraws two tables a few
times a second: one row per chain (phase, draws, divergences, step size, tree depth, messages
missed) and one row per scalar element of each variable (mean, sd, split R-hat, bulk ESS).

Layers
------
``WatchState``   plain class, no sockets: ``receive(frames)`` / ``update(msg)`` fold messages in,
                 ``chain_rows()`` / ``variable_rows()`` / ``finished()`` read the result. Tests
                 drive it with messages built by ``protocol.sample_message``.
``render``       the rich tables of a state.
``watch``        the socket loop: poll with a timeout (never blocks forever), drain, redraw.

Memory is bounded whatever the run's length: per run, at most ``max_variables`` variables
and their first ``max_elements`` elements are tracked, and per chain and variable a ring
buffer keeps the last ``window`` post-warmup draws (default 2000). Mean and sd cover every
post-warmup draw seen (Welford's update per chain, pooled across chains with Chan et al.'s
formula); split R-hat and bulk ESS (``arviz.rhat``, ``arviz.ess``, rank-normalised, Vehtari
et al. 2021) cover the last min(window, shortest chain) draws of each chain, so they describe
the recent window rather than the whole run once a chain passes ``window`` draws.

A subscriber may lag: ZeroMQ drops messages past the high-water mark rather than slow the
sampler down. Every message carries a per-chain ``seq`` without gaps, so the watcher counts
what it missed (including the messages sent before it joined) and shows "missed N".
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from exmc.runtime import protocol

DEFAULT_WINDOW = 2000
DEFAULT_MAX_ELEMENTS = 8
DEFAULT_MAX_VARIABLES = 40
MIN_DIAGNOSTIC_DRAWS = 4          # arviz's minimum draws per chain for R-hat and ESS

# Exit codes of ``watch`` (and of ``exmc watch``).
EXIT_DONE, EXIT_FAILED, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 3, 130


@dataclass
class ChainState:
    """What one chain has reported so far."""

    run: str
    chain: int
    warmup_draws: int = 0
    sampling_draws: int = 0
    warmup_divergences: int = 0
    divergences: int = 0
    step_size: float = math.nan
    tree_depth: int = 0
    acceptance_rate: float = math.nan
    first_seq: int | None = None
    last_seq: int | None = None
    missed: int = 0                 # messages never received: gaps in seq, and those before joining
    stale: int = 0                  # messages whose seq was not after the last one seen (skipped)
    warmup: bool = True
    status: str | None = None       # None while running; "ok" or "failed" once done
    reason: str | None = None
    num_draws: int | None = None    # as reported by exmc_done

    @property
    def done(self) -> bool:
        return self.status is not None

    @property
    def phase(self) -> str:
        if self.status == "ok":
            return "done"
        if self.status == "failed":
            return "failed" + (f": {self.reason}" if self.reason else "")
        return "warmup" if self.warmup else "sampling"


class Trace:
    """One chain's post-warmup draws of one variable's tracked elements.

    Running mean and sum of squared deviations (Welford 1962) over every draw, and a ring
    buffer of the last ``window`` draws, shape (window, num_elements).
    """

    def __init__(self, num_elements: int, window: int):
        self.count = 0
        self.mean = np.zeros(num_elements)
        self.m2 = np.zeros(num_elements)
        self.buffer = np.empty((window, num_elements))
        self.position = 0

    def add(self, values: np.ndarray):
        self.count += 1
        delta = values - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (values - self.mean)
        self.buffer[self.position] = values
        self.position = (self.position + 1) % len(self.buffer)

    def last(self, n: int) -> np.ndarray:
        """The last ``n`` kept draws in order, shape (n, num_elements); n <= kept."""
        if self.count < len(self.buffer):
            return self.buffer[self.count - n:self.count]
        return np.roll(self.buffer, -self.position, axis=0)[len(self.buffer) - n:]

    @property
    def kept(self) -> int:
        return min(self.count, len(self.buffer))


@dataclass
class Variable:
    """A variable of a run: its shape, the elements tracked, and one ``Trace`` per chain."""

    name: str
    shape: tuple
    num_tracked: int
    traces: dict = field(default_factory=dict)      # chain -> Trace

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))

    def labels(self) -> list[str]:
        if not self.shape:
            return [self.name]
        return [f"{self.name}[{','.join(map(str, np.unravel_index(k, self.shape)))}]"
                for k in range(self.num_tracked)]


@dataclass
class VariableRow:
    """One scalar element's running summary over the post-warmup draws of every chain."""

    run: str
    label: str
    draws: int          # over all chains
    chains: int
    mean: float
    sd: float
    rhat: float          # NaN until two chains have MIN_DIAGNOSTIC_DRAWS draws each
    ess_bulk: float
    window: int          # draws per chain the R-hat and ESS were computed on


def _pool(traces) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, mean and sd of several chains' Welford states (Chan, Golub & LeVeque 1979)."""
    traces = [t for t in traces if t.count]
    n = sum(t.count for t in traces)
    if n == 0:
        return 0, None, None
    mean = sum(t.count * t.mean for t in traces) / n
    m2 = sum(t.m2 + t.count * (t.mean - mean) ** 2 for t in traces)
    sd = np.sqrt(m2 / (n - 1)) if n > 1 else np.full_like(mean, math.nan)
    return n, mean, sd


def _diagnostics(draws: np.ndarray) -> tuple[float, float]:
    """Rank-normalised split R-hat and bulk ESS of a (chain, draw) array."""
    import arviz as az  # imported on first use: it takes a second or two
    if np.ptp(draws) == 0:      # a constant (a fixed deterministic): no spread to compare
        return math.nan, math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")   # a constant element gives NaN with a RuntimeWarning
        return float(az.rhat(draws)), float(az.ess(draws, method="bulk"))


class WatchState:
    """Everything a watcher knows, folded in one message at a time; no sockets, no display.

    Parameters
    ----------
    run : str, optional
        Only messages of this run are used (others count as ``ignored``).
    window : int
        Post-warmup draws kept per chain and variable for R-hat and ESS.
    max_elements : int
        Elements tracked per variable (the first ones in C order); the rest are noted.
    max_variables : int
        Variables tracked per run, in the order they first appear.
    diagnostics_interval : float
        Seconds to reuse R-hat and ESS before recomputing them (0: whenever a draw arrived).
        The interval also grows to 4x the last computation's time, so diagnostics never take
        more than a fifth of the watcher's time.
    """

    def __init__(self, run: str | None = None, window: int = DEFAULT_WINDOW,
                 max_elements: int = DEFAULT_MAX_ELEMENTS, max_variables: int = DEFAULT_MAX_VARIABLES,
                 diagnostics_interval: float = 0.0, clock=time.monotonic):
        if window < MIN_DIAGNOSTIC_DRAWS:
            raise ValueError(f"window must be at least {MIN_DIAGNOSTIC_DRAWS}")
        self.run, self.window = run, int(window)
        self.max_elements, self.max_variables = int(max_elements), int(max_variables)
        self.diagnostics_interval, self.clock = diagnostics_interval, clock
        self.chains: dict[tuple[str, int], ChainState] = {}
        self.variables: dict[str, dict[str, Variable]] = {}     # run -> name -> Variable
        self.untracked: dict[str, list[str]] = {}    # run -> names past max_variables, latest draw
        self.messages = 0
        self.bad = 0
        self.last_error: str | None = None
        self.ignored = 0
        self.last_message_at: float | None = None
        self._version = 0                   # bumped by each post-warmup draw
        self._diagnostics: dict = {}        # (run, name) -> (rhat array, ess array, window)
        self._diagnostics_version = -1
        self._diagnostics_at = -math.inf
        self.diagnostics_cost = 0.0         # seconds the last R-hat and ESS computation took

    # ----------------------------------------------------------------- folding messages in
    def receive(self, frames) -> dict | None:
        """Decode and fold in one received message; a malformed one is counted, never raised."""
        self.last_message_at = self.clock()
        try:
            msg = protocol.decode(frames)
        except protocol.ProtocolError as err:
            self._reject(str(err))
            return None
        return msg if self.update(msg) else None

    def update(self, msg: dict) -> bool:
        """Fold in one decoded message; returns False if it was rejected or ignored."""
        self.last_message_at = self.clock()
        if self.run is not None and msg["run"] != self.run:
            self.ignored += 1
            return False
        if msg["type"] == protocol.SAMPLE and not msg["warmup"]:
            try:
                values = self._values(msg)
            except ValueError as err:     # ragged lists, or a shape that changed mid-run
                self._reject(f"run {msg['run']} chain {msg['chain']}: {err}")
                return False
        self.messages += 1
        chain = self._chain(msg["run"], msg["chain"])
        if not self._in_sequence(chain, msg["seq"]):
            return False
        if msg["type"] == protocol.DONE:
            chain.status, chain.reason, chain.num_draws = msg["status"], msg["reason"], msg["num_draws"]
            return True
        stats = msg["stats"]
        chain.warmup = msg["warmup"]
        chain.step_size = float(stats["step_size"])
        chain.tree_depth = int(stats["tree_depth"])
        chain.acceptance_rate = float(stats["acceptance_rate"])
        if msg["warmup"]:
            chain.warmup_draws += 1
            chain.warmup_divergences += bool(stats["diverging"])
            return True
        chain.sampling_draws += 1
        chain.divergences += bool(stats["diverging"])
        for variable, elements in values:
            trace = variable.traces.get(chain.chain)
            if trace is None:
                trace = variable.traces[chain.chain] = Trace(variable.num_tracked, self.window)
            trace.add(elements)
        self._version += 1
        return True

    def _reject(self, error: str):
        self.bad += 1
        self.last_error = error

    def _chain(self, run: str, chain: int) -> ChainState:
        key = (run, chain)
        if key not in self.chains:
            self.chains[key] = ChainState(run, chain)
        return self.chains[key]

    @staticmethod
    def _in_sequence(chain: ChainState, seq: int) -> bool:
        """Count the messages missed before ``seq``; False for a seq already passed."""
        if chain.last_seq is None:
            chain.first_seq, chain.missed = seq, seq
        elif seq <= chain.last_seq:
            chain.stale += 1
            return False
        else:
            chain.missed += seq - chain.last_seq - 1
        chain.last_seq = seq
        return True

    def _values(self, msg) -> list[tuple[Variable, np.ndarray]]:
        """The tracked elements of each variable of a draw, checked before any state changes."""
        run_variables = self.variables.get(msg["run"], {})
        out, new, untracked = [], [], []
        for name, value in msg["point"].items():
            array = np.asarray(value, dtype=float)   # raises ValueError on ragged lists
            variable = run_variables.get(name)
            if variable is None:
                if len(run_variables) + len(new) >= self.max_variables:
                    untracked.append(name)
                    continue
                variable = Variable(name, array.shape, min(array.size, self.max_elements))
                new.append(variable)
            elif array.shape != variable.shape:
                raise ValueError(f"{name} has shape {array.shape}, earlier draws {variable.shape}")
            out.append((variable, array.reshape(-1)[:variable.num_tracked]))
        run_variables = self.variables.setdefault(msg["run"], run_variables)
        for variable in new:
            run_variables[variable.name] = variable
        self.untracked[msg["run"]] = untracked      # the latest draw's: bounded by one message
        return out

    # ----------------------------------------------------------------- reading the state
    def chain_rows(self) -> list[ChainState]:
        """Chains ordered by run, then chain number."""
        return [self.chains[k] for k in sorted(self.chains)]

    def variable_rows(self) -> list[VariableRow]:
        """One row per tracked scalar element, in the order variables first appeared."""
        self._refresh_diagnostics()
        rows = []
        for run, run_variables in self.variables.items():
            for name, variable in run_variables.items():
                n, mean, sd = _pool(variable.traces.values())
                chains = sum(1 for t in variable.traces.values() if t.count)
                if n == 0:
                    continue
                rhat, ess, window = self._diagnostics.get((run, name), (None, None, 0))
                for k, label in enumerate(variable.labels()):
                    rows.append(VariableRow(run, label, n, chains, float(mean[k]), float(sd[k]),
                                            math.nan if rhat is None else float(rhat[k]),
                                            math.nan if ess is None else float(ess[k]), window))
        return rows

    def notes(self) -> list[str]:
        """What the tables leave out: untracked elements and variables."""
        out = []
        for run, run_variables in self.variables.items():
            for variable in run_variables.values():
                if variable.num_tracked < variable.size:
                    out.append(f"{variable.name}: first {variable.num_tracked} of {variable.size} "
                               f"elements shown")
            if self.untracked.get(run):
                names = self.untracked[run]
                out.append(f"{len(names)} more variables not tracked: {', '.join(names[:5])}"
                           + (", ..." if len(names) > 5 else ""))
        return out

    def missed(self) -> int:
        return sum(c.missed for c in self.chains.values())

    def finished(self, expected_chains: int | None = None) -> bool:
        """True once every chain seen (of every run seen) is done, and at least
        ``expected_chains`` chains per run if given: a chain that never sent a message
        cannot be waited for otherwise."""
        if not self.chains or not all(c.done for c in self.chains.values()):
            return False
        if expected_chains is None:
            return True
        per_run: dict[str, int] = {}
        for run, _ in self.chains:
            per_run[run] = per_run.get(run, 0) + 1
        return all(n >= expected_chains for n in per_run.values())

    def failed(self) -> bool:
        return any(c.status == "failed" for c in self.chains.values())

    def _refresh_diagnostics(self):
        if self._diagnostics_version == self._version:
            return
        now = self.clock()
        interval = max(self.diagnostics_interval, 4 * self.diagnostics_cost)
        if self._diagnostics and now - self._diagnostics_at < interval:
            return
        start = time.perf_counter()
        results = {}
        for run, run_variables in self.variables.items():
            for name, variable in run_variables.items():
                traces = [t for t in variable.traces.values() if t.kept >= MIN_DIAGNOSTIC_DRAWS]
                if len(traces) < 2:      # arviz needs two chains; split halves of one would mislead
                    continue
                n = min(t.kept for t in traces)
                draws = np.stack([t.last(n) for t in traces])            # (chain, draw, element)
                pairs = [_diagnostics(draws[:, :, k]) for k in range(variable.num_tracked)]
                results[(run, name)] = (np.array([p[0] for p in pairs]),
                                        np.array([p[1] for p in pairs]), n)
        self._diagnostics = results
        self._diagnostics_version = self._version
        self._diagnostics_at = now
        self.diagnostics_cost = time.perf_counter() - start


# --------------------------------------------------------------------- rendering
def _number(x: float, spec: str = ".3g") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def _rhat_style(x: float) -> str:
    if not math.isfinite(x):
        return ""
    return "green" if x < 1.01 else ("yellow" if x < 1.1 else "bold red")


def render(state: WatchState, address: str = ""):
    """The display of a state: a status line, the chains table, the variables table, notes.

    Cells are ``Text`` objects, never markup strings: variable names and failure reasons come
    from the network, and ``Text`` shows brackets as they are and strips control codes.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    many_runs = len({run for run, _ in state.chains}) > 1
    missed = state.missed()
    header = Text.assemble(
        ("exmc watch ", "bold"), address, f"   messages {state.messages}",
        (f"   bad {state.bad}" + (f" (last: {state.last_error})" if state.last_error else ""),
         "red") if state.bad else "",
        (f"   missed {missed} (this watcher lagged or joined late)", "bold red") if missed else "")

    chains = Table(title="chains", title_justify="left")
    if many_runs:
        chains.add_column("run")
    for name in ("chain", "phase", "warmup", "draws", "divergences", "step size", "tree depth",
                 "accept", "missed"):
        chains.add_column(name, justify="left" if name == "phase" else "right")
    for c in state.chain_rows():
        divergences = str(c.divergences) + (f" (+{c.warmup_divergences} warmup)"
                                            if c.warmup_divergences else "")
        row = [Text(str(c.chain)),
               Text(c.phase, style={"ok": "green", "failed": "bold red"}.get(c.status, "")),
               Text(str(c.warmup_draws)), Text(str(c.sampling_draws)),
               Text(divergences, style="red" if c.divergences else ""),
               Text(_number(c.step_size)), Text(str(c.tree_depth)),
               Text(_number(c.acceptance_rate, ".2f")),
               Text(f"missed {c.missed}", style="bold red") if c.missed else Text("0")]
        chains.add_row(*([Text(c.run)] if many_runs else []) + row)

    variables = Table(title="variables (post-warmup)", title_justify="left")
    if many_runs:
        variables.add_column("run")
    variables.add_column("variable", overflow="fold")
    for name in ("draws", "mean", "sd", "R-hat", "ESS bulk"):
        variables.add_column(name, justify="right")
    rows = state.variable_rows()
    for r in rows:
        row = [Text(r.label), Text(str(r.draws)), Text(_number(r.mean)), Text(_number(r.sd)),
               Text(_number(r.rhat, ".3f"), style=_rhat_style(r.rhat)),
               Text(_number(r.ess_bulk, ".0f"))]
        variables.add_row(*([Text(r.run)] if many_runs else []) + row)

    notes = state.notes()
    windows = [r.window for r in rows if r.window and r.window < r.draws / r.chains]
    if windows:
        notes.append(f"R-hat and ESS cover the last {min(windows)} draws of each chain "
                     f"(at most {state.window} are kept)")
    return Group(header, chains, variables, *(Text(n, style="dim") for n in notes))


# --------------------------------------------------------------------- the socket loop
def watch(address: str, run: str | None = None, timeout: float | None = None,
          refresh: float = 4.0, expected_chains: int | None = None, grace: float = 1.0,
          console=None, state: WatchState | None = None) -> int:
    """Subscribe to ``address`` and display the run until it ends.

    Returns ``EXIT_DONE`` once every chain is done with status ok (``EXIT_FAILED`` if one
    failed), ``EXIT_TIMEOUT`` after ``timeout`` seconds without a message, and
    ``EXIT_INTERRUPTED`` on Ctrl-C; the display is drawn a last time in each case.

    The messages do not say how many chains a run has, so "every chain" means
    ``expected_chains`` per run when given, and otherwise every chain seen once ``grace``
    seconds have passed without a message after the last one finished (chains run one
    after another start within that time).
    """
    import zmq
    from rich.console import Console
    from rich.live import Live

    if refresh <= 0:
        raise ValueError("refresh must be positive")
    console = console or Console()
    state = state or WatchState(run=run, diagnostics_interval=1.0)
    period = 1.0 / refresh
    context = zmq.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, 100_000)      # lag shows as "missed", but buffer some first
    socket.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES + 4096)
    socket.setsockopt(zmq.SUBSCRIBE, protocol.topic(run) if run else b"exmc.")
    socket.connect(address)
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    started = time.monotonic()
    code = EXIT_INTERRUPTED
    try:
        with Live(render(state, address), console=console, auto_refresh=False,
                  redirect_stdout=False, redirect_stderr=False) as live:
            next_draw = time.monotonic() + period
            try:
                while True:
                    now = time.monotonic()
                    if poller.poll(max(0, int(1000 * (next_draw - now)))):
                        while time.monotonic() < next_draw:      # drain, but keep redrawing
                            try:
                                frames = socket.recv_multipart(zmq.NOBLOCK)
                            except zmq.Again:
                                break
                            state.receive(frames)
                    now = time.monotonic()
                    quiet_since = state.last_message_at or started
                    if state.finished(expected_chains) and (expected_chains is not None
                                                            or now - quiet_since >= grace):
                        code = EXIT_FAILED if state.failed() else EXIT_DONE
                        break
                    if timeout is not None and now - quiet_since >= timeout:
                        code = EXIT_TIMEOUT
                        break
                    if now >= next_draw:
                        live.update(render(state, address), refresh=True)
                        next_draw = now + period
            except KeyboardInterrupt:
                code = EXIT_INTERRUPTED
            state.diagnostics_interval = 0.0        # the last frame shows current R-hat and ESS
            state.diagnostics_cost = 0.0
            live.update(render(state, address), refresh=True)
    finally:
        socket.close(linger=0)
        context.term()
    if not console.is_terminal:
        console.line()      # rich ends a live display's last frame without a newline off a terminal
    console.print(_summary(state, code, timeout))
    return code


def _summary(state: WatchState, code: int, timeout) -> str:
    if code == EXIT_TIMEOUT:
        return f"no message for {timeout:g} s; stopped watching"
    if code == EXIT_INTERRUPTED:
        return "interrupted"
    n = len(state.chain_rows())
    status = "failed" if code == EXIT_FAILED else "ok"
    return f"all {n} chains done ({status})" if n > 1 else f"the chain is done ({status})"
