"""ReplayBuffer: ring storage, finiteness checks, uniform sampling with replacement."""
import numpy as np
import pytest

from numddpg.engine.agents import DDPGAgent
from numddpg.engine.buffer import BAD_OBS2, BAD_REW, STORED, NonFiniteTransition, ReplayBuffer


def fill(buf, n, start=0):
    """Store transitions whose every field encodes its index k (obs = [k, -k], ...)."""
    for k in range(start, start + n):
        buf.store(np.array([k, -k], np.float32), np.array([k + 0.5]), float(k),
                  np.array([k + 1, -k - 1], np.float64), k % 2)


def test_store_writes_rows_in_order_and_casts_to_float32():
    buf = ReplayBuffer(2, 1, 10)
    fill(buf, 3)
    assert (buf.size, buf.ptr, len(buf)) == (3, 3, 3)
    assert buf.obs.dtype == np.float32 and buf.obs2.dtype == np.float32
    np.testing.assert_array_equal(buf.obs[:3], [[0, 0], [1, -1], [2, -2]])
    np.testing.assert_array_equal(buf.obs2[:3], [[1, -1], [2, -2], [3, -3]])
    np.testing.assert_array_equal(buf.act[:3, 0], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(buf.rew[:3], [0, 1, 2])
    np.testing.assert_array_equal(buf.done[:3], [0, 1, 0])
    assert not buf.obs[3:].any()                        # untouched rows stay zero


def test_ring_overwrites_the_oldest_row_when_full():
    buf = ReplayBuffer(2, 1, 4)
    fill(buf, 6)                                        # rows 0..5; 0 and 1 overwritten
    assert (buf.size, buf.ptr) == (4, 2)
    np.testing.assert_array_equal(buf.rew, [4, 5, 2, 3])
    np.testing.assert_array_equal(buf.obs[:, 0], [4, 5, 2, 3])


@pytest.mark.parametrize("field, code", [("obs2", BAD_OBS2), ("rew", BAD_REW)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_transitions_are_refused_and_nothing_is_written(field, code, bad):
    buf = ReplayBuffer(2, 1, 4)
    fill(buf, 1)
    obs, act, obs2 = np.zeros(2), np.zeros(1), np.zeros(2)
    rew = 0.0
    if field == "obs2":
        obs2[1] = bad
    else:
        rew = bad
    with pytest.raises(NonFiniteTransition, match="non-finite"):
        buf.store(obs, act, rew, obs2, 0)
    assert buf.store_fast(obs, act, rew, obs2, 0.0) == code
    assert (buf.size, buf.ptr) == (1, 1)
    assert not buf.obs2[1].any() and buf.rew[1] == 0
    assert buf.store_fast(obs, act, 0.0, np.zeros(2), 0.0) == STORED


def test_sample_draws_only_filled_rows_uniformly_with_replacement():
    buf = ReplayBuffer(2, 1, 100, seed=0)
    fill(buf, 10)                                       # rows 0..9 of 100
    batch = buf.sample(20_000)
    assert batch["obs"].shape == (20_000, 2) and batch["act"].shape == (20_000, 1)
    assert batch["rew"].shape == (20_000,) and batch["done"].shape == (20_000,)
    k = batch["rew"].astype(int)
    assert k.min() == 0 and k.max() == 9                # never an unfilled (zero) row beyond 9
    # rows stay whole: every field of a sampled row belongs to the same transition k
    np.testing.assert_array_equal(batch["obs"][:, 0], k)
    np.testing.assert_array_equal(batch["obs2"][:, 1], -k - 1)
    np.testing.assert_array_equal(batch["act"][:, 0], k + 0.5)
    np.testing.assert_array_equal(batch["done"], k % 2)
    # uniform: each of 10 rows expects 2000 draws, binomial std ~42; 5 std = 212
    counts = np.bincount(k, minlength=10)
    assert np.all(np.abs(counts - 2000) < 212), counts
    # with replacement: a batch larger than the buffer is fine and repeats rows
    assert len(np.unique(buf.sample(50)["rew"])) <= 10


def test_sample_is_reproducible_from_the_seed():
    a, b, c = ReplayBuffer(2, 1, 50, seed=3), ReplayBuffer(2, 1, 50, seed=3), \
        ReplayBuffer(2, 1, 50, seed=4)
    for buf in (a, b, c):
        fill(buf, 50)
    ra, rb, rc = (buf.sample(64)["rew"] for buf in (a, b, c))
    np.testing.assert_array_equal(ra, rb)
    assert not np.array_equal(ra, rc)


def test_bad_arguments():
    with pytest.raises(ValueError, match="replay_size"):
        ReplayBuffer(2, 1, 0)
    buf = ReplayBuffer(2, 1, 5)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(3)
    fill(buf, 1)
    with pytest.raises(ValueError, match="batch_size"):
        buf.sample(0)


def test_the_agent_trains_from_the_buffer():
    """update_burst reads the buffer's arrays and size directly (the training loop's path)."""
    buf = ReplayBuffer(3, 1, 64, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(40):
        buf.store(rng.standard_normal(3), rng.uniform(-2, 2, 1), rng.standard_normal(),
                  rng.standard_normal(3), 0)
    agent = DDPGAgent(3, 1, -2, 2, hidden_sizes=(8,), seed=0)
    before = agent.critic.params.copy()
    stats = agent.update_burst(buf, 16, 5)
    assert stats.shape == (5, 4) and np.all(np.isfinite(stats))
    assert not np.array_equal(before, agent.critic.params)
