"""ADVI: fit a mean-field or full-rank Gaussian to the posterior on the unconstrained space.

Automatic differentiation variational inference (Kucukelbir, Tran, Ranganath, Gelman and
Blei 2017, JMLR 18(14)): maximise the evidence lower bound

    ELBO(q) = E_q[log p(z)] + H[q],    q = N(mean, L L^T),

by stochastic gradient ascent with reparameterised draws z = mean + L eta, eta ~ N(0, I).
``L = diag(exp(log_scale))`` for mean-field ADVI; for full-rank ADVI its strictly lower
triangle is free as well (the diagonal kept positive through its logarithm, as Stan's
``normal_meanfield`` / ``normal_fullrank`` families).  Steps follow Adam (Kingma and Ba
2015) in compiled code, a block of iterations at a time; between blocks Python checks
convergence on the ELBO averaged over the block and reports progress.

Names: ``eta`` a standard normal draw, ``z`` the point it maps to, ``g`` the gradient of
the log density there.
"""
from __future__ import annotations

import math
import threading
import time
from typing import NamedTuple

import numpy as np

from exmc.compiler.njit import call_model, njit

LOG_2PI = math.log(2.0 * math.pi)
STEPS, FAILED = 0, 1  # State.counters: Adam steps taken, iterations whose draw had no density


class Settings(NamedTuple):
    """Optimisation settings (see ``exmc.fit`` for the user-facing names)."""

    fullrank: bool
    learning_rate: float
    beta1: float  # Adam's decay of the gradient's running mean
    beta2: float  # and of its running square
    epsilon: float
    grad_samples: int  # draws per gradient estimate


class Gaussian(NamedTuple):
    """q = N(mean, L L^T) with L = diag(exp(log_scale)) + strictly lower part of ``lower``.

    ``lower`` is (d, d) for full rank (its diagonal and upper part unused) and (1, 1),
    unused, for mean-field, so one compiled loop serves both.
    """

    mean: np.ndarray
    log_scale: np.ndarray
    lower: np.ndarray


class State(NamedTuple):
    """Parameters, Adam's moment estimates for each, and the block's sum of iterates."""

    params: Gaussian
    first_moment: Gaussian
    second_moment: Gaussian
    iterate_sum: Gaussian  # for the block's average of iterates (Polyak-Ruppert)
    counters: np.ndarray  # (2,): STEPS, FAILED


@njit
def zeros_like(params):
    """A Gaussian of zeros shaped as ``params`` (gradients, Adam's moments)."""
    return Gaussian(np.zeros_like(params.mean), np.zeros_like(params.log_scale),
                    np.zeros_like(params.lower))


def new_state(mean, fullrank):
    """Start at ``mean`` with unit scales and no correlation."""
    d = mean.shape[0]
    params = Gaussian(np.array(mean, dtype=float), np.zeros(d),
                      np.zeros((d, d) if fullrank else (1, 1)))
    return State(params, zeros_like(params), zeros_like(params), zeros_like(params), np.zeros(2))


@njit
def draw_point(params, fullrank, eta, z):
    """z = mean + L eta."""
    for i in range(z.shape[0]):
        zi = params.mean[i] + math.exp(params.log_scale[i]) * eta[i]
        if fullrank:
            for j in range(i):
                zi += params.lower[i, j] * eta[j]
        z[i] = zi


@njit
def entropy(params):
    """H[q] = sum(log_scale) + d/2 (1 + log 2 pi)."""
    return np.sum(params.log_scale) + 0.5 * params.mean.shape[0] * (1.0 + LOG_2PI)


@njit
def add_gradient(params, fullrank, eta, g, out):
    """Add the gradient of log p(mean + L eta) with respect to the parameters to ``out``."""
    out.mean[:] += g
    for i in range(g.shape[0]):
        out.log_scale[i] += g[i] * eta[i] * math.exp(params.log_scale[i])
        if fullrank:
            for j in range(i):
                out.lower[i, j] += g[i] * eta[j]


@njit
def adam_ascent(x, g, m, v, t, settings):
    """One Adam step up the gradient ``g`` for parameter array ``x`` (any shape, in place)."""
    m *= settings.beta1
    m += (1.0 - settings.beta1) * g
    v *= settings.beta2
    v += (1.0 - settings.beta2) * g * g
    corrected = settings.learning_rate * math.sqrt(1.0 - settings.beta2 ** t) / (
        1.0 - settings.beta1 ** t)
    x += corrected * m / (np.sqrt(v) + settings.epsilon)


@njit(nogil=True)  # releases the GIL: progress display and callbacks run beside it
def run_steps(address, data, settings, state, rng, num_iterations, elbo):
    """Run ``num_iterations`` ADVI iterations from ``state`` (mutated in place).

    ``elbo`` (num_iterations,) receives each iteration's one-sample (or ``grad_samples``)
    ELBO estimate at the parameters before its step, NaN where a draw had no density (the
    step is then skipped and counted in ``counters[FAILED]``).
    """
    params, fullrank = state.params, settings.fullrank
    d = params.mean.shape[0]
    eta, z, g, logp = np.zeros(d), np.zeros(d), np.zeros(d), np.zeros(1)
    grad = zeros_like(params)
    for k in range(num_iterations):
        grad.mean[:] = 0.0
        grad.log_scale[:] = 0.0
        grad.lower[:, :] = 0.0
        total = 0.0
        ok = True
        for _ in range(settings.grad_samples):
            for i in range(d):
                eta[i] = rng.standard_normal()
            draw_point(params, fullrank, eta, z)
            status = call_model(address, z, data, g, logp)
            if status != 0 or not np.isfinite(logp[0]) or not np.all(np.isfinite(g)):
                ok = False
                break
            total += logp[0]
            add_gradient(params, fullrank, eta, g, grad)
        if not ok:
            elbo[k] = np.nan
            state.counters[FAILED] += 1.0
            continue
        scale = 1.0 / settings.grad_samples
        grad.mean[:] *= scale
        grad.log_scale[:] *= scale
        grad.lower[:, :] *= scale
        grad.log_scale[:] += 1.0  # d H[q] / d log_scale
        elbo[k] = total * scale + entropy(params)
        state.counters[STEPS] += 1.0
        t = state.counters[STEPS]
        m, v, s = state.first_moment, state.second_moment, state.iterate_sum
        adam_ascent(params.mean, grad.mean, m.mean, v.mean, t, settings)
        adam_ascent(params.log_scale, grad.log_scale, m.log_scale, v.log_scale, t, settings)
        if fullrank:
            adam_ascent(params.lower, grad.lower, m.lower, v.lower, t, settings)
        s.mean[:] += params.mean
        s.log_scale[:] += params.log_scale
        s.lower[:, :] += params.lower


def scale_matrix(params, fullrank):
    """L (d, d) of ``params``: the Cholesky factor of q's covariance."""
    lower = np.tril(params.lower, -1) if fullrank else 0.0
    return lower + np.diag(np.exp(params.log_scale))


class Convergence:
    """Whether the ELBO, averaged over each block of iterations, has stopped rising.

    Settled when ``patience`` blocks in a row fail to beat the best block average by
    ``max(relative_tolerance * |best|, absolute_tolerance)``.  Comparing with the best
    (not the previous) block also catches a step too large for the target, where the
    ELBO bounces instead of rising (as PyTorch's ``ReduceLROnPlateau``).
    """

    def __init__(self, relative_tolerance, absolute_tolerance, patience=3):
        self.relative, self.absolute, self.patience = relative_tolerance, absolute_tolerance, patience
        self.best = -np.inf
        self.stale = 0

    def update(self, block_elbo):
        """Feed one block's ELBO estimates; True once settled."""
        finite = block_elbo[np.isfinite(block_elbo)]
        mean = float(finite.mean()) if finite.size else -np.inf
        if self.best == -np.inf or mean > self.best + max(self.relative * abs(self.best),
                                                          self.absolute):
            self.best, self.stale = mean, 0
        else:
            self.stale += 1
        return self.stale >= self.patience


def optimise(compiled, settings, state, rng, max_iterations, convergence, check_every,
             decays=2, on_block=None):
    """Run ADVI until the ELBO settles at the smallest step, or ``max_iterations``.

    A constant Adam step leaves the iterates jittering about the optimum, by about
    ``sqrt(learning_rate * sd / 2)`` in a coordinate whose posterior sd is ``sd``.  So
    each time ``convergence`` (a fresh one per phase, from the factory) says the ELBO
    has settled, the step is cut tenfold, at most ``decays`` times; the fit ends when it
    settles after the last cut.  Each cut restarts Adam from the best block so far (the
    average of its iterates): a step too large can throw the fit far off, and the smaller
    step should not have to climb back.  A phase lasts at least ``2 / learning_rate``
    iterations, a few times the iterates' relaxation time at that step, so that the
    average of the last phase's iterates (Polyak-Ruppert averaging), which is what is
    returned, is not still the previous phase's jitter.  With no cut made, the last
    block is averaged.  ``on_block(done, elbo_so_far)`` runs after each block;
    returning True stops.

    Returns (elbo estimates (iterations,), converged).
    """
    elbo = np.full(max_iterations, np.nan)
    done, converged, phase, phase_start = 0, False, 0, 0
    settled = convergence()
    best_elbo, best = -np.inf, None
    phase_sum, phase_steps = zeros_like(state.params), 0.0
    while done < max_iterations:
        n = min(check_every, max_iterations - done)
        for part in state.iterate_sum:
            part[...] = 0.0
        steps_before = state.counters[STEPS]
        run_steps(compiled.address, compiled.data, settings, state, rng, n, elbo[done:done + n])
        steps = state.counters[STEPS] - steps_before
        block = elbo[done:done + n]
        done += n
        if steps > 0:
            block_mean = float(np.mean(block[np.isfinite(block)]))
            if block_mean > best_elbo:
                best_elbo = block_mean
                best = Gaussian(*(total / steps for total in state.iterate_sum))
            for into, total in zip(phase_sum, state.iterate_sum):
                into += total
            phase_steps += steps
        converged = settled.update(block) and done - phase_start >= 2.0 / settings.learning_rate
        stop = on_block(done, elbo[:done]) if on_block is not None else False
        if converged and phase < decays and not stop:
            phase, converged, settled, phase_start = phase + 1, False, convergence(), done
            settings = settings._replace(learning_rate=settings.learning_rate * 0.1)
            if best is not None:
                restart(state, best)
            phase_sum, phase_steps = zeros_like(state.params), 0.0
        elif converged or stop:
            break
    if phase == 0 and steps > 0:  # no cut: the last block's average
        phase_sum, phase_steps = state.iterate_sum, steps
    if phase_steps > 0:
        for value, total in zip(state.params, phase_sum):
            value[...] = total / phase_steps
    return elbo[:done], converged


def restart(state, params):
    """Set ``state`` to ``params`` with fresh Adam moments (their bias correction restarts)."""
    for value, new in zip(state.params, params):
        value[...] = new
    for moments in (state.first_moment, state.second_moment):
        for part in moments:
            part[...] = 0.0
    state.counters[STEPS] = 0.0


def fit(model, method="advi", n=10_000, seed=None, init=None, learning_rate=0.1,
        grad_samples=1, relative_tolerance=1e-3, absolute_tolerance=1e-2, check_every=100,
        progressbar=True, callback=None, blocking=True):
    """Fit a Gaussian approximation to the posterior of ``model`` by ADVI.

    Parameters
    ----------
    model : Model
    method : {"advi", "fullrank_advi"}
        Mean-field (independent coordinates) or full-rank (correlated) Gaussian on the
        unconstrained space.  Full rank costs O(d^2) per iteration.
    n : int
        Most iterations (PyMC's ``n``); fewer when the ELBO converges.
    seed : int, optional
        Same seed, same fit, bit for bit.
    init : dict, optional
        Constrained starting values for the mean by variable name; the others start
        uniformly in (-2, 2) on the unconstrained scale, as ``exmc.sample``'s chains.
    learning_rate : float
        Adam's step size on the unconstrained scale.
    grad_samples : int
        Draws per gradient and ELBO estimate (Stan's ``grad_samples``).
    relative_tolerance, absolute_tolerance : float
        Convergence: the ELBO averaged over each ``check_every`` iterations has not
        beaten its best by ``max(relative_tolerance * |ELBO|, absolute_tolerance)`` for
        three blocks.  The step is then cut tenfold, twice, and the fit ends when the
        ELBO settles after the last cut, or after ``n`` iterations
        (``Approximation.converged`` says which).
    check_every : int
        Iterations per block: convergence check, progress and ``callback``.
    progressbar : bool
        Show iterations and the current ELBO (plain lines when output is not a terminal).
    callback : callable, optional
        ``callback(iteration, elbo)`` after each block, ``elbo`` the estimates so far;
        returning True stops the fit there.
    blocking : bool
        False returns at once a ``FitHandle`` (``wait()``, ``elbo()`` so far, ``abort()``)
        while the fit runs in a background thread (the compiled loop releases the GIL).

    Returns
    -------
    Approximation
        ``.sample(draws, seed=)`` gives InferenceData; ``.elbo`` the ELBO history.
    """
    if not blocking:
        return FitHandle(model, dict(
            method=method, n=n, seed=seed, init=init, learning_rate=learning_rate,
            grad_samples=grad_samples, relative_tolerance=relative_tolerance,
            absolute_tolerance=absolute_tolerance, check_every=check_every,
            progressbar=progressbar), callback)
    from exmc.compiler import compile_model
    from exmc.ir.builder import Model
    from exmc.runtime.chain import initial_point
    from exmc.runtime.notices import CompileNotice
    from exmc.runtime.progress import make_fit_progress

    if not isinstance(model, Model):
        raise TypeError(f"exmc.fit needs a model from Builder or @exmc.model, got "
                        f"{type(model).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    _whole("n", n, 1)
    _whole("grad_samples", grad_samples, 1)
    _whole("check_every", check_every, 1)
    _number("learning_rate", learning_rate, positive=True)
    _number("relative_tolerance", relative_tolerance)
    _number("absolute_tolerance", absolute_tolerance)
    fullrank = method == "fullrank_advi"
    settings = Settings(fullrank, float(learning_rate), 0.9, 0.999, 1e-8, int(grad_samples))
    with CompileNotice(enabled=progressbar):
        compiled = compile_model(model)
        run_steps(compiled.address, compiled.data, settings,  # compile (or load) the loop here
                  new_state(np.zeros(compiled.dim), fullrank), np.random.default_rng(0), 0,
                  np.zeros(0))
    seed_sequence = np.random.SeedSequence(seed)
    rng = np.random.Generator(np.random.PCG64(seed_sequence))
    start, _, _ = initial_point(compiled, init, rng)
    state = new_state(start, fullrank)
    began = time.perf_counter()
    with make_fit_progress(progressbar, n, method) as display:
        def on_block(done, elbo):
            display.update(done, _recent(elbo, check_every))
            return bool(callback(done, elbo)) if callback is not None else False

        elbo, converged = optimise(compiled, settings, state, rng, int(n),
                                   lambda: Convergence(relative_tolerance, absolute_tolerance),
                                   int(check_every), on_block=on_block)
    if not np.any(np.isfinite(elbo)):
        raise ValueError("ADVI made no step: the log density was not finite at any draw "
                         "from the starting approximation; pass init= with plausible values")
    return Approximation(compiled, method, state.params, elbo, converged,
                         int(state.counters[FAILED]), time.perf_counter() - began,
                         seed_sequence.entropy)


METHODS = ("advi", "fullrank_advi")


class FitHandle:
    """A fit started with ``exmc.fit(..., blocking=False)``, going on in a background thread."""

    def __init__(self, model, options, callback=None):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._elbo = np.zeros(0)
        self._result = self._error = None

        def watch(iteration, elbo):
            with self._lock:
                self._elbo = elbo.copy()
            stop = bool(callback(iteration, elbo)) if callback is not None else False
            return stop or self._stop.is_set()

        def run():
            try:
                self._result = fit(model, **options, callback=watch)
            except BaseException as err:  # handed to wait()
                self._error = err

        self._thread = threading.Thread(target=run, name="exmc-fit", daemon=True)
        self._thread.start()

    def done(self):
        return not self._thread.is_alive()

    def elbo(self):
        """The ELBO estimates so far (up to the last finished block of iterations)."""
        with self._lock:
            return self._elbo.copy()

    def wait(self, timeout=None):
        """The Approximation, once the fit ends (TimeoutError if still running after ``timeout``)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the fit is still running")
        if self._error is not None:
            raise self._error
        return self._result

    def abort(self, timeout=60.0):
        """Stop after the current block and return the Approximation reached so far."""
        self._stop.set()
        return self.wait(timeout)


def _whole(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _number(name, value, positive=False):
    ok = (isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > 0 if positive else value >= 0))
    if not ok:
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")


def _recent(elbo, window):
    finite = elbo[-window:][np.isfinite(elbo[-window:])]
    return float(finite.mean()) if finite.size else float("nan")


class Approximation:
    """A fitted Gaussian on the unconstrained space, and how the fit went.

    Attributes
    ----------
    method : str
    mean, std : ndarray (d,)
        Mean and standard deviations on the unconstrained scale, in the sampler's flat
        layout (``pointmap``); ``unconstrained_mean()`` / ``unconstrained_std()`` by name.
    cov : ndarray (d, d)
    elbo : ndarray (iterations,)
        Each iteration's ELBO estimate (NaN where the draw had no density);
        ``hist`` is its negative, the loss, as PyMC's ``approx.hist``.
    converged : bool
        Whether the convergence criterion stopped the fit (else it ran all ``n``).
    failed_steps : int
        Iterations skipped because their draw had no finite density.
    time : float
        Seconds of optimisation, compilation excluded.
    """

    def __init__(self, compiled, method, params, elbo, converged, failed_steps, seconds, seed):
        self.compiled, self.method = compiled, method
        self.params = Gaussian(*(np.array(p) for p in params))
        self.scale = scale_matrix(self.params, method == "fullrank_advi")
        self.mean = self.params.mean.copy()
        self.cov = self.scale @ self.scale.T
        self.std = np.sqrt(np.diag(self.cov))
        self.elbo, self.converged = elbo, converged
        self.failed_steps, self.time, self.seed = failed_steps, seconds, seed

    @property
    def hist(self):
        return -self.elbo

    @property
    def pointmap(self):
        return self.compiled.pointmap

    def _by_name(self, flat):
        return {s.name: flat[s.offset:s.offset + s.size].reshape(s.shape)
                for s in self.compiled.pointmap.free}

    def unconstrained_mean(self):
        """Dict variable name -> mean on the unconstrained scale, in the variable's shape."""
        return self._by_name(self.mean)

    def unconstrained_std(self):
        """Dict variable name -> standard deviation on the unconstrained scale."""
        return self._by_name(self.std)

    def __repr__(self):
        state = "converged" if self.converged else "not converged"
        last = _recent(self.elbo, 100)
        return (f"<Approximation {self.method}: {self.mean.size} parameters, {self.elbo.size} "
                f"iterations ({state}), ELBO {last:.4g}>")

    def sample_unconstrained(self, draws, rng):
        """(points (draws, d), log q at them (draws,)) from the approximation."""
        eta = rng.standard_normal((draws, self.mean.size))
        points = self.mean + eta @ self.scale.T
        log_q = -0.5 * np.sum(eta * eta, axis=1) - np.sum(self.params.log_scale) \
            - 0.5 * self.mean.size * LOG_2PI
        return points, log_q

    def sample(self, draws=1000, seed=None):
        """InferenceData of ``draws`` draws from the approximation (one chain).

        ``posterior`` holds constrained values and deterministics as ``exmc.sample``'s;
        ``sample_stats`` the model's log density ``lp`` (unconstrained, Jacobian included)
        and the approximation's ``log_q`` at each draw.  ``attrs["pareto_k"]`` is the
        Pareto k of the importance ratios p/q (Yao et al. 2018, "Yes, but did it work?"):
        below 0.7 the approximation is usable for importance-weighted estimates, above
        it the draws can be far off the posterior.
        """
        from exmc.samplers.approximation import approximation_idata, log_densities, pareto_k

        _whole("draws", draws, 1)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        points, log_q = self.sample_unconstrained(draws, rng)
        lp, _ = log_densities(self.compiled, points)
        attrs = {"sampler": self.method.upper() if self.method == "advi" else "fullrank ADVI",
                 "iterations": int(self.elbo.size), "converged": int(self.converged),
                 "elbo": _recent(self.elbo, 100), "fit_time": self.time,
                 "pareto_k": pareto_k(lp - log_q), "seed": str(self.seed)}
        return approximation_idata(self.compiled, points[None], {"lp": lp[None], "log_q": log_q[None]},
                                   attrs)
