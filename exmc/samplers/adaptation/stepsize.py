"""Step-size adaptation: Nesterov dual averaging (Hoffman & Gelman 2014, sec. 3.2; Stan's stepsize_adaptation.hpp)."""
import math

from exmc.compiler.njit import njit
from exmc.samplers.integrators import (copy, draw_momentum, hamiltonian, kinetic_energy,
                                       leapfrog, velocity)

# Slots of the dual-averaging state vector (kept in a float array so it survives between blocks).
MU, S_BAR, X_BAR, COUNTER = range(4)


@njit
def restart_dual_averaging(state, step_size):
    state[MU] = math.log(10.0 * step_size)
    state[S_BAR] = 0.0
    state[X_BAR] = 0.0
    state[COUNTER] = 0.0


@njit
def learn_step_size(state, accept_stat, target, gamma, t0, kappa):
    """One dual-averaging update from the draw's acceptance statistic; returns the new step size."""
    state[COUNTER] += 1.0
    n = state[COUNTER]
    accept_stat = min(1.0, accept_stat)
    eta = 1.0 / (n + t0)
    state[S_BAR] = (1.0 - eta) * state[S_BAR] + eta * (target - accept_stat)
    x = state[MU] - state[S_BAR] * math.sqrt(n) / gamma
    x_eta = n ** (-kappa)
    state[X_BAR] = (1.0 - x_eta) * state[X_BAR] + x_eta * x
    return math.exp(x)


@njit
def final_step_size(state):
    return math.exp(state[X_BAR])


@njit(inline="never")  # called once per metric window: a call costs nothing here
def init_step_size(address, data, metric, ws, q, grad, logp, step, rng, fault_rate):
    """Stan's init_stepsize heuristic: double or halve until one leapfrog step's
    acceptance crosses 0.8.  Bounded to 100 trials; ``q`` is left untouched."""
    log_target = math.log(0.8)
    direction = 0
    for trial in range(100):
        copy(ws.q, q)
        copy(ws.grad, grad)
        ws.logp[0] = logp
        draw_momentum(metric, rng, ws.p)
        velocity(metric, ws.p, ws.v)
        H0 = -logp + kinetic_energy(ws.p, ws.v)
        status = leapfrog(address, data, metric, ws.q, ws.p, ws.grad, ws.logp, ws.v, step,
                          rng, fault_rate)
        delta = H0 - hamiltonian(status, ws.logp[0], ws.p, ws.v)
        if trial == 0:
            direction = 1 if delta > log_target else -1
            continue
        if direction == 1 and not delta > log_target:
            break
        if direction == -1 and not delta < log_target:
            break
        step = 2.0 * step if direction == 1 else 0.5 * step
        if step > 1e7 or step < 1e-12:
            break
    return step
