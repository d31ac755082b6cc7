"""Helpers shared by several test files: small agents and batches (test_agents.py, test_td3.py), a
small numddpg.sb3 model, a checkpoint with its record edited."""
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


def small_sb3(Algo, env="Pendulum-v1", **kw):
    """A numddpg.sb3 model of class ``Algo`` with an 8-unit net, a 500-row buffer and batches of
    8 from step 10 (SB3's keyword arguments in ``kw`` override these)."""
    args = dict(learning_starts=10, batch_size=8, buffer_size=500,
                policy_kwargs=dict(net_arch=[8]), seed=0)
    args.update(kw)
    return Algo("MlpPolicy", env, **args)


def rewrite_meta(src, dst, edit):
    """Copy checkpoint ``src`` to ``dst`` with ``edit(meta)`` applied to its JSON record."""
    from numddpg.files.checkpoint import read_checkpoint, write_checkpoint
    meta, arrays = read_checkpoint(src, allow_nonfinite=("epoch.update_stats",))
    for key in ("format", "format_version", "numddpg_version", "arrays"):
        meta.pop(key)
    edit(meta)
    write_checkpoint(dst, arrays, meta, allow_nonfinite=("epoch.update_stats",))
    return dst
