"""numddpg.kernels.rng: SplitMix64 against a pure-Python reference, and the derived uniform, randint
and normal draws.  Every draw is seeded, so the statistical bounds below cannot flake: each is
stated with the probability that a correct generator would exceed it on a random seed.
"""
import numpy as np
import pytest

from numddpg.kernels import rng

MASK = (1 << 64) - 1


def splitmix64(state):
    """Pure-Python SplitMix64 step on an int state (arithmetic mod 2^64): (new_state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def test_known_answer_vector():
    """The published test vector of SplitMix64 for seed 1234567 (used by xoshiro's authors)."""
    st = rng.new_state(1234567)
    assert [int(rng.next_u64(st)) for _ in range(5)] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423,
        4593380528125082431, 16408922859458223821]


@pytest.mark.parametrize("seed", [0, 1, 42, 2**63 + 12345, 2**64 - 1, -1, 2**70 + 3])
def test_next_u64_equals_python_reference(seed):
    st = rng.new_state(seed)
    assert st.dtype == np.uint64 and st.shape == (1,)
    s = seed % (1 << 64)                       # new_state takes the seed mod 2^64
    assert int(st[0]) == s
    for _ in range(1000):
        s, z = splitmix64(s)
        assert int(rng.next_u64(st)) == z      # exact: integer arithmetic
        assert int(st[0]) == s                 # the caller-owned state advances in place


def test_uniform_is_top_53_bits_in_unit_interval():
    st = rng.new_state(7)
    s = 7
    for _ in range(1000):
        s, z = splitmix64(s)
        u = rng.uniform(st)
        assert u == (z >> 11) * 2.0**-53       # exact: 53-bit integer times a power of two
        assert 0.0 <= u < 1.0


def test_randint_in_range_and_uniform():
    n, N = 10, 100_000
    st = rng.new_state(2024)
    draws = np.array([rng.randint(st, n) for _ in range(N)])
    assert draws.min() >= 0 and draws.max() <= n - 1
    counts = np.bincount(draws, minlength=n)
    expected = N / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # chi-square with n - 1 = 9 degrees of freedom: mean 9, sd 4.2; P(chi2 > 40) ~ 5e-6.
    assert chi2 < 40, (chi2, counts)
    # and not suspiciously perfect either: P(chi2 < 0.5) ~ 1e-5 (a counter, not a generator).
    assert chi2 > 0.5, (chi2, counts)


@pytest.mark.parametrize("n", [1, 3, 1000])
def test_randint_small_and_large_ranges(n):
    st = rng.new_state(n)
    draws = [rng.randint(st, n) for _ in range(2000)]
    assert min(draws) >= 0 and max(draws) <= n - 1
    if n == 3:
        assert set(draws) == {0, 1, 2}


def test_normal_mean_and_std():
    N = 100_000
    st = rng.new_state(99)
    x = np.array([rng.normal(st) for _ in range(N)])
    assert np.all(np.isfinite(x))
    # Standard error of the mean 1/sqrt(N) = 0.0032: 0.016 is 5 sd (P ~ 6e-7).
    assert abs(x.mean()) < 0.016
    # Standard error of the sample std ~ 1/sqrt(2N) = 0.0022: 0.011 is 5 sd.
    assert abs(x.std() - 1.0) < 0.011
    # Tails of a normal: P(|x| > 3) = 0.0027, i.e. 270 +- 16 expected; 200..340 is > 4 sd.
    assert 200 < np.sum(np.abs(x) > 3) < 340
