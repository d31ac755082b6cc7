"""Helpers shared by the agent tests (test_agents.py, test_td3.py)."""
from types import SimpleNamespace

import numpy as np


def small_agent(cls, obs_dim=3, act_dim=2, hidden=(8, 8), low=(-2.0, -0.5), high=(1.0, 3.0),
                seed=0, **kw):
    """A small float64 agent of class ``cls`` with asymmetric bounds (mid != 0, half differs
    per dimension)."""
    kw.setdefault("polyak", 0.9)       # targets visibly different from the online nets
    return cls(obs_dim, act_dim, low, high, hidden_sizes=hidden, dtype=np.float64, seed=seed,
               **kw)


def random_batch(rng, agent, B):
    """obs, obs2 ~ N(0, 1); act ~ U(low, high); rew ~ N(0, 1); done ~ Bernoulli(0.3)."""
    o, a = agent.obs_dim, agent.act_dim
    return (rng.standard_normal((B, o)), rng.uniform(agent.act_low, agent.act_high, (B, a)),
            rng.standard_normal(B), rng.standard_normal((B, o)),
            (rng.uniform(size=B) < 0.3).astype(np.float64))


def fake_buffer(rng, agent, capacity, size):
    """A ReplayBuffer stand-in (float32 storage, as the real one).  Rows at and after ``size``
    are NaN: sampling one would turn the update into NaNs."""
    o, a = agent.obs_dim, agent.act_dim
    buf = SimpleNamespace(obs=np.full((capacity, o), np.nan, np.float32),
                          act=np.full((capacity, a), np.nan, np.float32),
                          rew=np.full(capacity, np.nan, np.float32),
                          obs2=np.full((capacity, o), np.nan, np.float32),
                          done=np.full(capacity, np.nan, np.float32), size=size)
    obs, act, rew, obs2, done = random_batch(rng, agent, size)
    buf.obs[:size], buf.act[:size], buf.rew[:size] = obs, act, rew
    buf.obs2[:size], buf.done[:size] = obs2, done
    return buf
