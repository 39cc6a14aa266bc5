"""Pieces shared by the approximate methods: log densities at many points, Pareto k, InferenceData."""
import numpy as np

from exmc.compiler.njit import call_model, njit


@njit(nogil=True)
def log_density_many(address, data, points, logps, grads):
    """Log densities (n,) and gradients (n, d) of the model at ``address`` at ``points`` (n, d).

    A failed evaluation, a point outside the support (a non-zero status) or a non-finite
    value gives ``-inf`` with a zero gradient, so callers see one kind of "no density here".
    """
    logp = np.zeros(1)
    for k in range(points.shape[0]):
        status = call_model(address, points[k], data, grads[k], logp)
        if status != 0 or not np.isfinite(logp[0]) or not np.all(np.isfinite(grads[k])):
            logps[k] = -np.inf
            grads[k, :] = 0.0
        else:
            logps[k] = logp[0]


def log_densities(compiled, points):
    """(log densities (n,), gradients (n, d)) of ``compiled`` at unconstrained ``points`` (n, d)."""
    points = np.ascontiguousarray(np.atleast_2d(points), dtype=np.float64)
    logps, grads = np.empty(points.shape[0]), np.empty_like(points)
    log_density_many(compiled.address, compiled.data, points, logps, grads)
    return logps, grads


def psis_weights(log_ratios):
    """(normalised Pareto-smoothed importance weights, Pareto k) for ``log p - log q``.

    PSIS (Vehtari et al. 2024) through arviz's ``psislw``; non-finite ratios get weight 0.
    k above 0.7 says the weights, and estimates from them, are unreliable; ``-inf`` when
    the ratios are all equal (q is p up to a constant), NaN weights when none is finite.
    """
    import warnings

    import arviz as az

    log_ratios = np.where(np.isfinite(log_ratios), log_ratios, -np.inf)
    finite = np.isfinite(log_ratios)
    if not np.any(finite):
        return np.full(log_ratios.shape, np.nan), float("inf")
    if np.ptp(log_ratios[finite]) < 1e-12 * max(1.0, np.max(np.abs(log_ratios[finite]))):
        # q equals p up to a constant: even weights (psislw cannot fit a tail and says inf)
        return finite / finite.sum(), -float("inf")
    with warnings.catch_warnings():  # arviz warns on k > 0.7; callers report k instead
        warnings.simplefilter("ignore")
        smoothed, k = az.psislw(log_ratios - np.max(log_ratios), reff=1.0)
    weights = np.exp(smoothed - np.max(smoothed))
    return weights / weights.sum(), float(k)


def pareto_k(log_ratios):
    """Pareto k of the importance ratios exp(log_ratios); inf if none is finite."""
    return psis_weights(log_ratios)[1]


def approximation_idata(compiled, points, stats, attrs):
    """InferenceData from unconstrained ``points`` (chains, draws, d) of an approximation."""
    import arviz as az

    import exmc

    flat = compiled.constrain(points.reshape(-1, compiled.dim))
    posterior = {k: v.reshape(points.shape[:2] + v.shape[1:]) for k, v in flat.items()}
    observed = {v.name: v.data for v in compiled.model.variables if v.kind == "obs"}
    attrs = {"exmc_version": exmc.__version__, **attrs}
    idata = az.from_dict(posterior=posterior, sample_stats=stats, observed_data=observed,
                         attrs=attrs)
    for group in idata.groups():
        idata[group].attrs.update(inference_library="exmc",
                                  inference_library_version=exmc.__version__)
    return idata
