"""Counter-based random numbers for device code: each number is a hash of (chain key, counter).

A chain's stream is ``key`` (two 64-bit words derived on the host from the chain's
``SeedSequence`` child) and a counter; the n-th number is a function of (key, n)
alone, so a chain draws the same numbers whatever other chains run beside it and
however its draws are split into kernel launches.  The hash is SplitMix64's
finaliser (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
generators"), applied twice with the key mixed in between: the key enters both
rounds, so two chains' streams are not shifts of one sequence (as plain
SplitMix64 streams with different seeds are).

``rng`` in these functions is a uint64 array of 3: [key0, key1, counter].
"""
import math

import numpy as np
from numba import cuda

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
ONE = np.uint64(1)
S30, S27, S31, S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
TWO_TO_MINUS_53 = 2.0 ** -53


@cuda.jit(device=True)
def mix64(z):
    """SplitMix64's finaliser: a bijection of 64-bit words with full avalanche."""
    z = (z ^ (z >> S30)) * MIX1
    z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


@cuda.jit(device=True)
def next_word(rng):
    """The 64-bit word for the stream's current counter; advances the counter."""
    counter = rng[2]
    rng[2] = counter + ONE
    return mix64(mix64(counter * GOLDEN ^ rng[0]) + rng[1])


@cuda.jit(device=True)
def uniform(rng):
    """Uniform on the open interval (0, 1): 53 random bits, offset by half a step."""
    return (float(next_word(rng) >> S11) + 0.5) * TWO_TO_MINUS_53


@cuda.jit(device=True)
def standard_normal(rng):
    """N(0, 1) by Box-Muller (the cosine branch; two uniforms per draw)."""
    radius = math.sqrt(-2.0 * math.log(uniform(rng)))
    return radius * math.cos(2.0 * math.pi * uniform(rng))


def chain_keys(seed_sequences):
    """(chains, 3) uint64 streams [key0, key1, counter 0], one per ``SeedSequence`` child."""
    keys = np.zeros((len(seed_sequences), 3), dtype=np.uint64)
    for chain, sequence in enumerate(seed_sequences):
        keys[chain, :2] = sequence.generate_state(2, np.uint64)
    return keys
