"""Sequential Monte Carlo: particles tempered from the prior to the posterior, and the evidence.

The target at inverse temperature ``beta`` is ``prior(x) * likelihood(x)**beta`` on
the unconstrained scale, the prior part carrying the transforms' Jacobian, so
``beta = 0`` is the prior and ``beta = 1`` the posterior.  One stage:

1. ``next_beta``: the next inverse temperature, by bisection, such that the
   incremental weights ``likelihood**(beta' - beta)`` keep an effective sample
   size of ``threshold * N`` (adaptive tempering, Jasra et al. 2011);
2. the evidence grows by the mean incremental weight (Del Moral, Doucet and
   Jasra 2006): ``log Z += log mean(w)``, an unbiased estimate of ``Z`` per chain;
3. resampling (systematic or multinomial) gives equally weighted particles;
4. ``mutate``: compiled Metropolis-Hastings steps that leave the tempered target
   invariant, either independent proposals from a Gaussian fitted to the
   particles (``"imh"``, PyMC's default SMC kernel) or random-walk proposals
   with the particles' covariance (``"mh"``); or ``mutate_hmc``, Hamiltonian
   Monte Carlo with the particles' covariance as inverse mass matrix
   (``"hmc"``, as in Buchholz, Chopin and Jacob 2021).  The number of steps
   adapts, up to ``max_steps``: the independent kernel steps until all but a
   fraction ``correlation_threshold`` of the particles have moved, so a low
   acceptance rate buys more steps; the others until every coordinate's
   correlation between the stage's start and the current particles is below
   ``correlation_threshold`` (PyMC's kernels watch the same correlation, but stop
   once it no longer falls).

Each chain is an independent run with its own particles and evidence estimate.
Two compiled models give the two halves: the model itself (the whole log
density) and ``prior_model`` (the same without observations and potentials, so
its log density is the prior's); the log-likelihood is their difference.  Both
are called through their C addresses, so the kernels here compile once for
every model.

References: Del Moral, Doucet and Jasra (2006), "Sequential Monte Carlo samplers",
JRSS B 68(3); Jasra, Stephens, Doucet and Tsagaris (2011), "Inference for Lévy-driven
stochastic volatility models via adaptive sequential Monte Carlo", Scand. J. Stat.;
Ching and Chen (2007), "Transitional Markov chain Monte Carlo" (PyMC's SMC);
Buchholz, Chopin and Jacob (2021), "Adaptive tuning of Hamiltonian Monte Carlo within
sequential Monte Carlo", Bayesian Analysis 16(3).
"""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from exmc.compiler.njit import call_model, njit
from exmc.ir.builder import Model, Variable, _dependencies
from exmc.ir.dists.base import Distribution
from exmc.ir.expr import as_expr
from exmc.ir.forward import forward_draws

KERNELS = ("imh", "mh", "hmc")
RESAMPLING = ("systematic", "multinomial")
MH_TARGET_ACCEPT = 0.234  # the random-walk kernel's scale is tuned towards this rate
HMC_TARGET_ACCEPT = 0.65  # and the HMC kernel's step size towards this one
HMC_LEAPFROG_STEPS = 10


class Settings(NamedTuple):
    """SMC settings (PyMC's defaults; see ``sample_smc`` for their meaning)."""

    num_particles: int
    kernel: str
    threshold: float
    resampling: str
    correlation_threshold: float
    max_steps: int
    max_stages: int


class Particles(NamedTuple):
    """Equally weighted particles: unconstrained positions and both halves of their log density."""

    position: np.ndarray  # (n, d)
    log_prior: np.ndarray  # (n,) prior log density with the transforms' Jacobian
    log_likelihood: np.ndarray  # (n,) summed over every observation


class StageInfo(NamedTuple):
    """What one tempering stage did."""

    beta: float  # inverse temperature reached
    log_evidence_increment: float  # log mean incremental weight
    acceptance_rate: float  # of the mutation's proposals
    n_steps: int  # mutation steps run
    scale: float  # proposal scale (1 for the independent kernel), HMC's step size


class ChainResult(NamedTuple):
    particles: Particles
    stages: list  # [StageInfo]
    log_marginal_likelihood: float


# ---- the model's two halves ------------------------------------------------------------

def prior_model(model):
    """``model`` without its observations and potentials: its log density is the prior's.

    An observed variable that another refers to (a covariate) stays as a constant
    deterministic holding its data.  The sampled variables, hence the unconstrained
    vector's layout, are the same.
    """
    referenced = {name for v in model.variables if v.kind != "obs" for name in _dependencies(v)}
    kept = [v if v.kind != "obs" else Variable(v.name, "det", expr=as_expr(np.asarray(v.data)))
            for v in model.variables if v.kind != "obs" or v.name in referenced]
    return Model(kept)


class TemperedModel:
    """A model seen as prior and likelihood, both evaluated by address from compiled code.

    The compiled model gives the whole log density; the compiled ``prior_model``
    gives the prior's, with the transforms' Jacobian.  The log-likelihood is their
    difference, so a ``Potential`` is tempered with the likelihood (as in PyMC).

    Attributes
    ----------
    logp_address, prior_address : int
        C entries of the whole log density and of the prior's.
    data, prior_data : ndarray
        Copies of the two models' data arguments with their work buffers, so that
        one ``TemperedModel`` per thread can evaluate at the same time.
    """

    def __init__(self, compiled, prior_compiled):
        if [(s.name, s.offset, s.size) for s in compiled.pointmap.free] != \
                [(s.name, s.offset, s.size) for s in prior_compiled.pointmap.free]:
            raise RuntimeError("the prior model's unconstrained layout differs from the model's")
        self.compiled, self.prior_compiled = compiled, prior_compiled
        self.dim = compiled.dim
        self.logp_address, self.prior_address = compiled.address, prior_compiled.address
        self.data, self.prior_data = compiled.data.copy(), prior_compiled.data.copy()

    def evaluate(self, position):
        """Particles at ``position`` (n, d): log prior and log-likelihood, -inf where undefined."""
        position = np.ascontiguousarray(position, dtype=np.float64)
        log_prior, log_likelihood = np.empty(len(position)), np.empty(len(position))
        evaluate_particles(self.logp_address, self.data, self.prior_address, self.prior_data,
                           position, log_prior, log_likelihood)
        return Particles(position, log_prior, log_likelihood)


@njit
def evaluate_point(logp_address, data, prior_address, prior_data, x, grad, value):
    """(log prior, log-likelihood) at ``x``.

    The log-likelihood is -inf where the whole density is zero or undefined but the
    prior's is not (the data impossible there); both are -inf where the prior's is.
    """
    status = call_model(prior_address, x, prior_data, grad, value)
    log_prior = value[0]
    if status != 0 or not math.isfinite(log_prior):
        return -math.inf, -math.inf
    status = call_model(logp_address, x, data, grad, value)
    logp = value[0]
    if status != 0 or math.isnan(logp) or logp == math.inf:
        return log_prior, -math.inf
    return log_prior, logp - log_prior


@njit(nogil=True)
def evaluate_particles(logp_address, data, prior_address, prior_data, position, log_prior,
                       log_likelihood):
    grad, value = np.empty(position.shape[1]), np.empty(1)
    for i in range(position.shape[0]):
        log_prior[i], log_likelihood[i] = evaluate_point(
            logp_address, data, prior_address, prior_data, np.ascontiguousarray(position[i]),
            grad, value)


# ---- the prior, for the starting particles ---------------------------------------------

def prior_positions(compiled, n, rng):
    """``n`` draws from the prior on the unconstrained scale, shape (n, dim).

    Ancestral sampling with each family's random draws (``exmc.ir.forward``, as
    ``sample_prior_predictive``), then the inverse of each variable's transform.
    ``compiled`` is the compiled ``prior_model``, whose observed variables that
    others refer to are their data (the model's own would be drawn here).
    """
    model, pointmap = compiled.model, compiled.pointmap
    for var in model.free_variables:
        if type(var.dist).random is Distribution.random:
            raise ValueError(f"sample_smc starts from prior draws, but variable {var.name!r} "
                             f"({var.dist.family}) has no random-draw function: SMC needs a "
                             f"proper prior with random draws for every sampled variable (a "
                             f"Custom density or a Flat prior has none)")
    try:
        values = forward_draws(model, n, rng, wanted=pointmap.names)
    except NotImplementedError as err:  # an improper prior (Flat) says so when asked to draw
        raise ValueError(f"sample_smc starts from prior draws, but the prior cannot be drawn "
                         f"from: {err}; SMC needs a proper prior") from None
    return pointmap.unconstrain_draws(values)


# ---- tempering and resampling ------------------------------------------------------------

def effective_sample_size(log_weights):
    """Kish's ESS, ``(sum w)^2 / sum w^2``, of unnormalised log weights (0 when all are zero)."""
    top = np.max(log_weights)
    if not np.isfinite(top):
        return 0.0
    w = np.exp(log_weights - top)
    return float(w.sum() ** 2 / (w * w).sum())


def next_beta(beta, log_likelihood, threshold, tolerance=1e-12):
    """The inverse temperature after ``beta``: ESS of ``exp(delta * loglik)`` = threshold * N.

    Bisection on ``delta`` in (0, 1 - beta]; returns 1.0 when even the whole
    step keeps the ESS above the target.  The ESS falls as delta grows, so
    bisection finds the one crossing.
    """
    target = threshold * len(log_likelihood)
    if effective_sample_size((1.0 - beta) * log_likelihood) >= target:
        return 1.0
    low, high = 0.0, 1.0 - beta
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        if effective_sample_size(middle * log_likelihood) >= target:
            low = middle
        else:
            high = middle
    return min(beta + max(low, tolerance), 1.0)


def systematic_resample(weights, rng):
    """Indices by systematic resampling: one uniform, N evenly spaced points on the weights' CDF."""
    n = len(weights)
    points = (rng.random() + np.arange(n)) / n
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, points, side="right")


def multinomial_resample(weights, rng):
    """Indices drawn independently with probabilities ``weights``."""
    return rng.choice(len(weights), size=len(weights), p=weights)


RESAMPLERS = {"systematic": systematic_resample, "multinomial": multinomial_resample}


def fitted_gaussian(position, weights):
    """(mean, lower Cholesky factor of the covariance) of weighted particles, jittered if needed."""
    mean = weights @ position
    centred = position - mean
    cov = (centred * weights[:, None]).T @ centred
    cov = 0.5 * (cov + cov.T)
    jitter = 1e-10 * max(float(np.mean(np.diag(cov))), 1e-10)
    for _ in range(10):
        try:
            return mean, np.linalg.cholesky(cov + jitter * np.eye(len(mean)))
        except np.linalg.LinAlgError:
            jitter *= 100.0
    return mean, np.diag(np.sqrt(np.maximum(np.diag(cov), 1e-10)))


# ---- the compiled mutation ----------------------------------------------------------------

@njit
def tempered(log_prior, log_likelihood, beta):
    """Log density of the tempered target (-inf stays -inf at any beta)."""
    if log_likelihood == -math.inf:
        return -math.inf
    return log_prior + beta * log_likelihood


@njit
def max_correlation(start, position, start_mean, start_sd):
    """Largest |correlation| over coordinates between ``start`` and ``position`` (n, d)."""
    n, d = position.shape
    worst = 0.0
    for j in range(d):
        if start_sd[j] <= 1e-300:
            continue
        mean = 0.0
        for i in range(n):
            mean += position[i, j]
        mean /= n
        cross, var = 0.0, 0.0
        for i in range(n):
            dev = position[i, j] - mean
            cross += (start[i, j] - start_mean[j]) * dev
            var += dev * dev
        if var <= 1e-300:
            continue
        worst = max(worst, abs(cross / n / (start_sd[j] * math.sqrt(var / n))))
    return worst


@njit
def decorrelated(start, position, start_mean, start_sd, correlation_threshold):
    """True when no coordinate's correlation with the stage's start is above the threshold.

    Deliberately not relaxed to the noise of a sample correlation (3 / sqrt(n)):
    stopping there left HMC's particles too dependent on their ancestors, and its
    evidence on a 10-coefficient regression 0.11 nats (3.7 standard errors) high.
    So with more than one coordinate and up to some 10,000 particles, the random
    walk and HMC usually run ``max_steps``.
    """
    return max_correlation(start, position, start_mean, start_sd) < correlation_threshold


@njit
def whitened_norm2(x, mean, chol, scale):
    """||(scale L)^{-1} (x - mean)||^2 by forward substitution."""
    d = x.shape[0]
    z = np.empty(d)
    total = 0.0
    for j in range(d):
        acc = x[j] - mean[j]
        for k in range(j):
            acc -= scale * chol[j, k] * z[k]
        z[j] = acc / (scale * chol[j, j])
        total += z[j] * z[j]
    return total


@njit(nogil=True)
def mutate(logp_address, data, prior_address, prior_data, position, log_prior, log_likelihood,
           beta, mean, chol, scale, independent, rng, max_steps, correlation_threshold):
    """Metropolis-Hastings steps on every particle at inverse temperature ``beta``, in place.

    ``independent``: proposals ``mean + scale L z`` (an independence sampler,
    with the Gaussian's density in the acceptance ratio); otherwise random-walk
    proposals ``x + scale L z``.  Stops after ``max_steps``, or once all but a
    fraction ``correlation_threshold`` of the particles have moved (independent:
    a particle that moved sits at an independent draw, and the unmoved fraction is
    its correlation with the start), or once ``decorrelated`` (random walk).
    Returns (acceptance rate, steps run).
    """
    n, d = position.shape
    start = position.copy()
    start_mean, start_sd = np.zeros(d), np.zeros(d)
    for j in range(d):
        start_mean[j] = start[:, j].mean()
        start_sd[j] = start[:, j].std()
    moved = np.zeros(n, dtype=np.bool_)
    half_norm2 = np.zeros(n)  # IMH: -log q(x) + const of each current particle
    if independent:
        for i in range(n):
            half_norm2[i] = 0.5 * whitened_norm2(position[i], mean, chol, scale)
    proposal, z, grad, value = np.empty(d), np.empty(d), np.empty(d), np.empty(1)
    accepted, steps = 0, 0
    for _ in range(max_steps):
        for i in range(n):
            for j in range(d):
                z[j] = rng.standard_normal()
            for j in range(d):
                acc = 0.0
                for k in range(j + 1):
                    acc += chol[j, k] * z[k]
                proposal[j] = (mean[j] if independent else position[i, j]) + scale * acc
            new_prior, new_loglik = evaluate_point(logp_address, data, prior_address,
                                                   prior_data, proposal, grad, value)
            new_target = tempered(new_prior, new_loglik, beta)
            if new_target == -math.inf:
                continue
            log_ratio = new_target - tempered(log_prior[i], log_likelihood[i], beta)
            new_half = 0.0
            if independent:
                for j in range(d):
                    new_half += 0.5 * z[j] * z[j]
                log_ratio += new_half - half_norm2[i]
            if log_ratio >= 0.0 or math.log(rng.random()) < log_ratio:
                position[i, :] = proposal
                log_prior[i], log_likelihood[i] = new_prior, new_loglik
                half_norm2[i] = new_half
                moved[i] = True
                accepted += 1
        steps += 1
        if independent:  # a particle that moved sits at an independent draw: count them
            if 1.0 - moved.mean() < correlation_threshold:
                break
        elif decorrelated(start, position, start_mean, start_sd, correlation_threshold):
            break
    return accepted / (steps * n), steps


@njit
def tempered_gradient(logp_address, data, prior_address, prior_data, x, beta, grad,
                      grad_prior, value):
    """(log prior, log-likelihood) at ``x``, and in ``grad`` the tempered target's gradient.

    ``(1 - beta)`` times the prior model's gradient plus ``beta`` times the model's:
    the log-likelihood's gradient is their difference.  Undefined values read as in
    ``evaluate_point``.
    """
    status = call_model(prior_address, x, prior_data, grad_prior, value)
    log_prior = value[0]
    if status != 0 or not math.isfinite(log_prior):
        return -math.inf, -math.inf
    status = call_model(logp_address, x, data, grad, value)
    logp = value[0]
    if status != 0 or not math.isfinite(logp):
        return log_prior, -math.inf
    for j in range(x.shape[0]):
        grad[j] = (1.0 - beta) * grad_prior[j] + beta * grad[j]
        if not math.isfinite(grad[j]):
            return log_prior, -math.inf
    return log_prior, logp - log_prior


@njit
def lower_times(chol, x, out):
    """out = L x for lower-triangular L."""
    d = x.shape[0]
    for j in range(d):
        acc = 0.0
        for k in range(j + 1):
            acc += chol[j, k] * x[k]
        out[j] = acc


@njit
def upper_times(chol, x, out):
    """out = L^T x for lower-triangular L."""
    d = x.shape[0]
    for j in range(d):
        acc = 0.0
        for k in range(j, d):
            acc += chol[k, j] * x[k]
        out[j] = acc


@njit
def upper_solve(chol, z, out):
    """out = L^{-T} z by back substitution."""
    d = z.shape[0]
    for j in range(d - 1, -1, -1):
        acc = z[j]
        for k in range(j + 1, d):
            acc -= chol[k, j] * out[k]
        out[j] = acc / chol[j, j]


@njit(nogil=True)
def mutate_hmc(logp_address, data, prior_address, prior_data, position, log_prior,
               log_likelihood, beta, chol, step_size, num_leapfrog, rng, max_steps,
               correlation_threshold):
    """Hamiltonian Monte Carlo steps on every particle at inverse temperature ``beta``, in place.

    The inverse mass matrix is the particles' covariance ``L L^T``, so momenta are
    ``p = L^{-T} z`` and the kinetic energy ``|L^T p|^2 / 2``.  Each trajectory has
    ``num_leapfrog`` steps of a step size jittered by +-20% (against periodic
    trajectories); after each sweep over the particles the step size moves towards
    an acceptance rate of ``HMC_TARGET_ACCEPT``.  Stops as ``mutate`` does.
    Returns (acceptance rate, sweeps run, the step size reached).
    """
    n, d = position.shape
    start = position.copy()
    start_mean, start_sd = np.zeros(d), np.zeros(d)
    for j in range(d):
        start_mean[j] = start[:, j].mean()
        start_sd[j] = start[:, j].std()
    q, p, z, velocity = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    grad, grad_prior, value = np.empty(d), np.empty(d), np.empty(1)
    accepted_total, steps = 0, 0
    for _ in range(max_steps):
        accepted = 0
        for i in range(n):
            q[:] = position[i]
            lp, ll = tempered_gradient(logp_address, data, prior_address, prior_data, q, beta,
                                       grad, grad_prior, value)
            start_target = tempered(lp, ll, beta)
            if start_target == -math.inf:
                continue
            for j in range(d):
                z[j] = rng.standard_normal()
            upper_solve(chol, z, p)
            start_energy = 0.5 * np.dot(z, z) - start_target
            eps = step_size * (0.8 + 0.4 * rng.random())
            target = -math.inf
            for _step in range(num_leapfrog):
                for j in range(d):
                    p[j] += 0.5 * eps * grad[j]
                upper_times(chol, p, z)
                lower_times(chol, z, velocity)
                for j in range(d):
                    q[j] += eps * velocity[j]
                lp, ll = tempered_gradient(logp_address, data, prior_address, prior_data, q,
                                           beta, grad, grad_prior, value)
                target = tempered(lp, ll, beta)
                if target == -math.inf:
                    break
                for j in range(d):
                    p[j] += 0.5 * eps * grad[j]
            if target == -math.inf:
                continue
            upper_times(chol, p, z)
            log_ratio = start_energy - (0.5 * np.dot(z, z) - target)
            if not math.isfinite(log_ratio):
                continue
            if log_ratio >= 0.0 or math.log(rng.random()) < log_ratio:
                position[i, :] = q
                log_prior[i], log_likelihood[i] = lp, ll
                accepted += 1
        accepted_total += accepted
        steps += 1
        step_size *= math.exp(accepted / n - HMC_TARGET_ACCEPT)
        if decorrelated(start, position, start_mean, start_sd, correlation_threshold):
            break
    return accepted_total / (steps * n), steps, step_size


# ---- one chain -----------------------------------------------------------------------------

def run_chain(tempered_model, settings, rng, on_stage=None):
    """One SMC run from prior draws to the posterior; ``on_stage(StageInfo)`` after each stage."""
    n = settings.num_particles
    particles = tempered_model.evaluate(prior_positions(tempered_model.prior_compiled, n, rng))
    if not np.any(np.isfinite(particles.log_likelihood)):
        raise ValueError("no prior draw has a finite log-likelihood: the data are impossible "
                         "under every particle (check the observed values against the model)")
    beta, log_evidence, stages = 0.0, 0.0, []
    dim = tempered_model.dim
    scale = {"imh": 1.0, "mh": 2.38 / math.sqrt(dim), "hmc": dim ** -0.25}[settings.kernel]
    while beta < 1.0:
        if len(stages) == settings.max_stages:
            raise RuntimeError(f"SMC did not reach beta = 1 in {settings.max_stages} stages "
                               f"(beta = {beta:.3g}); raise max_stages or threshold")
        new_beta = next_beta(beta, particles.log_likelihood, settings.threshold)
        log_weights = np.where(np.isfinite(particles.log_likelihood),
                               (new_beta - beta) * particles.log_likelihood, -np.inf)
        top = np.max(log_weights)
        increment = float(top + np.log(np.mean(np.exp(log_weights - top))))
        log_evidence += increment
        weights = np.exp(log_weights - top)
        weights /= weights.sum()
        mean, chol = fitted_gaussian(particles.position, weights)
        index = RESAMPLERS[settings.resampling](weights, rng)
        particles = Particles(*(np.ascontiguousarray(a[index]) for a in particles))
        beta = new_beta
        model_arguments = (tempered_model.logp_address, tempered_model.data,
                           tempered_model.prior_address, tempered_model.prior_data,
                           particles.position, particles.log_prior, particles.log_likelihood,
                           beta)
        if settings.kernel == "hmc":
            rate, steps, scale = mutate_hmc(*model_arguments, chol, scale, HMC_LEAPFROG_STEPS,
                                            rng, settings.max_steps,
                                            settings.correlation_threshold)
        else:
            rate, steps = mutate(*model_arguments, mean, chol, scale, settings.kernel == "imh",
                                 rng, settings.max_steps, settings.correlation_threshold)
        stages.append(StageInfo(beta, increment, float(rate), int(steps), scale))
        if settings.kernel == "mh":
            scale *= math.exp(rate - MH_TARGET_ACCEPT)
        if on_stage is not None:
            on_stage(stages[-1])
    return ChainResult(particles, stages, log_evidence)


# ---- the public entry point ------------------------------------------------------------------

def _check_settings(draws, chains, kernel, threshold, resampling, correlation_threshold,
                    max_steps, max_stages):
    """Settings from ``sample_smc``'s arguments, or a ValueError naming the bad one."""
    def whole(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"sample_smc: {name} must be an integer >= {low}, got {value!r}")
    whole("draws", draws, 2)
    whole("chains", chains, 1)
    whole("max_steps", max_steps, 1)
    whole("max_stages", max_stages, 1)
    if kernel not in KERNELS:
        raise ValueError(f"sample_smc: kernel must be one of {', '.join(map(repr, KERNELS))}, "
                         f"got {kernel!r}")
    if resampling not in RESAMPLING:
        raise ValueError(f"sample_smc: resampling must be one of "
                         f"{', '.join(map(repr, RESAMPLING))}, got {resampling!r}")
    for name, value in (("threshold", threshold), ("correlation_threshold", correlation_threshold)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                or not 0.0 < float(value) < 1.0:
            raise ValueError(f"sample_smc: {name} must be a number in (0, 1), got {value!r}")
    return Settings(int(draws), kernel, float(threshold), resampling, float(correlation_threshold),
                    int(max_steps), int(max_stages))


def sample_smc(model, draws=2000, chains=4, seed=None, kernel="imh", threshold=0.5,
               resampling="systematic", correlation_threshold=0.01, max_steps=25,
               max_stages=500, cores=None, progressbar=True, blocking=True, _on_stage=None):
    """Sequential Monte Carlo from the prior to the posterior, with the log marginal likelihood.

    Parameters
    ----------
    model : exmc.Model
        Every sampled variable needs a family with random draws (the particles start
        from the prior), and the prior must be proper.
    draws : int
        Particles per chain; the posterior has ``draws`` draws per chain.
    chains : int
        Independent SMC runs, each with its own particles and evidence estimate.
    seed : int, optional
        Same seed, same draws, bit for bit (one ``SeedSequence(seed)`` child per chain).
    kernel : {"imh", "mh", "hmc"}
        Mutation: independent Metropolis-Hastings with a Gaussian fitted to the
        particles (PyMC's default), random-walk Metropolis with the particles'
        covariance and a scale tuned towards a 0.234 acceptance rate, or HMC (10
        leapfrog steps, the particles' covariance as inverse mass matrix, the step
        size tuned towards a 0.65 acceptance rate).  On a 50-coefficient regression
        only HMC kept the evidence right (docs/inference.md).
    threshold : float in (0, 1)
        Each stage's inverse temperature keeps the incremental weights' effective
        sample size at ``threshold * draws``; higher means more, smaller stages.
    resampling : {"systematic", "multinomial"}
    correlation_threshold : float in (0, 1)
        Mutation steps continue until the particles are this close to independent
        of the stage's start: for ``"imh"``, all but this fraction have moved; for
        the others, every coordinate's correlation between the starting and the
        current particles is below this (with more than one coordinate, usually
        only after ``max_steps``).
    max_steps : int
        At most this many mutation steps per stage.
    max_stages : int
        An error if the tempering needs more stages than this.
    cores : int, optional
        Chains run in this many threads at once (the compiled mutation releases the
        GIL); by default ``min(chains, CPUs this process may use)``.  The draws do not
        depend on it.
    progressbar : bool
        A bar per chain showing the inverse temperature where output is interactive.
    blocking : bool
        False returns at once an ``SmcHandle`` (``wait()``, ``beta()`` of each chain so
        far, ``abort()``) while the chains run in a background thread.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (chain, draw, ...), ``sample_stats`` with ``lp`` (chain, draw),
        ``log_marginal_likelihood`` (chain,) and, per stage (chain, stage; NaN or -1
        after a chain's last stage), ``beta``, ``log_evidence_increment``,
        ``acceptance_rate``, ``n_steps`` and ``scale``; and ``observed_data``.
        ``sample_stats.attrs["log_marginal_likelihood"]`` is the chains' combined
        estimate ``log(mean_c Z_c)`` and ``..._se`` its standard error from the spread
        between chains (NaN for one chain).
    """
    from exmc.compiler import compile_model
    settings = _check_settings(draws, chains, kernel, threshold, resampling,
                               correlation_threshold, max_steps, max_stages)
    if not blocking:
        return SmcHandle(model, dict(
            draws=draws, chains=chains, seed=seed, kernel=kernel, threshold=threshold,
            resampling=resampling, correlation_threshold=correlation_threshold,
            max_steps=max_steps, max_stages=max_stages, cores=cores, progressbar=progressbar))
    if cores is None:
        from exmc.runtime.executors import available_cores
        cores = min(chains, available_cores())
    elif isinstance(cores, bool) or not isinstance(cores, (int, np.integer)) or cores < 1:
        raise ValueError(f"sample_smc: cores must be an integer >= 1, got {cores!r}")
    start = time.perf_counter()
    compiled, prior_compiled = compile_model(model), compile_model(prior_model(model))
    seed_sequence = np.random.SeedSequence(seed)
    with _StageProgress(progressbar, chains) as progress:
        def on_stage(chain, info):
            progress.update(chain, info)
            if _on_stage is not None:
                _on_stage(chain, info)

        def chain_run(chain, child):
            return run_chain(TemperedModel(compiled, prior_compiled), settings,
                             np.random.default_rng(child), lambda info: on_stage(chain, info))
        children = seed_sequence.spawn(chains)
        with ThreadPoolExecutor(max_workers=int(cores)) as pool:
            results = list(pool.map(chain_run, range(chains), children))
    attrs = {"sampler": "SMC", "seed": str(seed_sequence.entropy), "cores": int(cores),
             "sampling_time": time.perf_counter() - start}
    return to_inference_data(compiled, results, settings, attrs)


class SmcAborted(Exception):
    """Raised inside a chain's stage callback to end a run stopped by ``SmcHandle.abort``."""


class SmcHandle:
    """A run started with ``exmc.sample_smc(..., blocking=False)``, going on in a thread."""

    def __init__(self, model, options):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._beta = {}
        self._result = self._error = None

        def on_stage(chain, info):
            with self._lock:
                self._beta[chain] = float(info.beta)
            if self._stop.is_set():
                raise SmcAborted

        def run():
            try:
                self._result = sample_smc(model, **options, _on_stage=on_stage)
            except BaseException as err:  # handed to wait()
                self._error = err

        self._thread = threading.Thread(target=run, name="exmc-smc", daemon=True)
        self._thread.start()

    def done(self):
        return not self._thread.is_alive()

    def beta(self):
        """{chain: inverse temperature reached so far} (1.0: that chain has reached the posterior)."""
        with self._lock:
            return dict(self._beta)

    def wait(self, timeout=None):
        """The InferenceData once every chain has reached the posterior (TimeoutError if still
        running after ``timeout``; None if the run was aborted)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("SMC is still running")
        if isinstance(self._error, SmcAborted):
            return None
        if self._error is not None:
            raise self._error
        return self._result

    def abort(self, timeout=60.0):
        """Stop every chain at its next stage and return None: particles at an inverse
        temperature below 1 are not posterior draws."""
        self._stop.set()
        return self.wait(timeout)


def combined_log_evidence(log_evidences):
    """(log of the mean of the chains' evidence estimates, its standard error; NaN for one chain).

    Each chain's ``Z_c`` is unbiased, so their mean is too; the standard error of
    its log is the sd of ``Z_c / mean`` over sqrt(chains) (the delta method).
    """
    values = np.asarray(log_evidences, dtype=float)
    top = np.max(values)
    relative = np.exp(values - top)
    combined = float(top + np.log(relative.mean()))
    if len(values) < 2:
        return combined, float("nan")
    return combined, float(np.std(relative / relative.mean(), ddof=1) / np.sqrt(len(values)))


def to_inference_data(compiled, results, settings, attrs):
    """InferenceData of the final particles, with the stages and evidence in ``sample_stats``."""
    import arviz as az  # imported here: it costs ~2 s
    import xarray as xr

    import exmc

    positions = np.stack([r.particles.position for r in results])  # (chains, draws, dim)
    flat = compiled.constrain(positions.reshape(-1, compiled.dim))
    posterior = {k: v.reshape(positions.shape[:2] + v.shape[1:]) for k, v in flat.items()}
    lp = np.stack([r.particles.log_prior + r.particles.log_likelihood for r in results])
    observed = {v.name: v.data for v in compiled.model.variables if v.kind == "obs"}
    log_evidences = [r.log_marginal_likelihood for r in results]
    combined, se = combined_log_evidence(log_evidences)
    attrs = {"exmc_version": exmc.__version__, **attrs, "kernel": settings.kernel,
             "resampling": settings.resampling, "threshold": settings.threshold,
             "log_marginal_likelihood": combined, "log_marginal_likelihood_se": se}
    idata = az.from_dict(posterior=posterior, sample_stats={"lp": lp},
                         observed_data=observed or None, attrs=attrs)
    stats = idata.sample_stats
    stats["log_marginal_likelihood"] = xr.DataArray(np.array(log_evidences), dims=("chain",))
    stages = max(len(r.stages) for r in results)
    for field, fill in zip(StageInfo._fields, (np.nan, np.nan, np.nan, -1, np.nan)):
        table = np.full((len(results), stages), fill, dtype=type(fill) if fill == -1 else float)
        for c, r in enumerate(results):
            table[c, :len(r.stages)] = [getattr(s, field) for s in r.stages]
        stats[field] = xr.DataArray(table, dims=("chain", "stage"))
    stats.attrs.update(attrs)
    for group in idata.groups():  # ArviZ's schema: each group names the library that made it
        idata[group].attrs.update(inference_library="exmc",
                                  inference_library_version=exmc.__version__)
    return idata


class _StageProgress:
    """A live bar per chain (inverse temperature from 0 to 1) where output is interactive."""

    def __init__(self, enabled, chains):
        from exmc.runtime.progress import is_interactive
        self.progress = None
        if enabled and is_interactive():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            self.progress = Progress(
                TextColumn("SMC chain {task.fields[chain]}"), BarColumn(),
                TextColumn("beta {task.completed:.3f}  stage {task.fields[stage]}  "
                           "acceptance {task.fields[acceptance]:.2f}"), TimeElapsedColumn())
            self.tasks = [self.progress.add_task("", total=1.0, chain=c, stage=0, acceptance=0.0)
                          for c in range(chains)]

    def __enter__(self):
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc) if self.progress is not None else False

    def update(self, chain, info):
        if self.progress is not None:
            task = self.tasks[chain]
            stage = self.progress.tasks[task].fields["stage"] + 1
            self.progress.update(task, completed=info.beta, stage=stage,
                                 acceptance=info.acceptance_rate)
