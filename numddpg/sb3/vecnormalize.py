"""Training on SB3's VecNormalize as SB3's off-policy algorithms do: the replay buffer stores
the *original* observations and rewards, and a minibatch is normalized as it is sampled, with
the VecNormalize's statistics of that moment.

    s_hat = clip((s - mean) / sqrt(var + eps), -clip_obs, clip_obs)     obs_rms: mean, var
    r_hat = clip(r / sqrt(var_R + eps), -clip_reward, clip_reward)      ret_rms: var_R

(with norm_obs / norm_reward; eps is the VecNormalize's epsilon).  The VecNormalize updates its
statistics itself as it steps (when ``training``); numddpg reads them:

    observations   numddpg's own sampling-time normalization (numddpg.engine.normalizer: the
                   same map, shift = mean, scale = 1 / sqrt(var + eps), in the jitted gather),
                   fed the VecNormalize's statistics after every env step by ``Statistics``,
                   whose ``update`` copies them instead of merging; the loop's policy acts on
                   s_hat of the original observation, the observation the VecNormalize
                   returned
    rewards        the jitted sampler reads a reward array as it is: before each training
                   round, ``NormalizedRewards`` writes r_hat of the filled rows into a second
                   array (one pass over them) that the round samples from

numddpg.sb3.vecenv.LoopVecEnv hands the loop the original observations and rewards
(``get_original_obs``, ``get_original_reward``) and, for an episode's end, the terminal
observation unnormalized with the statistics it was normalized with, as SB3 stores it.  None of
this runs without a VecNormalize.  Observations of a Dict space (whose statistics are per key)
are trained on as the VecNormalize returns them, normalized when stored.
"""
import numpy as np

from ..kernels.normalize import scaled_rewards_into
from ..training.acting import Policy
from .vecenv import originals_of


class Statistics:
    """numddpg's observation normalizer (shift, scale, clip: what the kernels read) holding the
    VecNormalize ``vec_normalize``'s obs_rms statistics; ``update`` copies them anew."""

    def __init__(self, vec_normalize):
        self.vec_normalize = vec_normalize
        n = np.size(vec_normalize.obs_rms.mean)       # (a Box of any shape: flattened)
        self.shift, self.scale = np.zeros(n), np.ones(n)
        self.clip = np.full(1, float(vec_normalize.clip_obs))
        self.update()

    def update(self, x=None):
        """Copy the VecNormalize's current statistics (the observations ``x`` the loop passes
        were merged by the VecNormalize itself)."""
        rms = self.vec_normalize.obs_rms
        self.shift[:] = np.ravel(rms.mean)
        self.scale[:] = 1.0 / np.sqrt(np.ravel(rms.var) + self.vec_normalize.epsilon)

    def __call__(self, obs):
        """s_hat of observations (n, obs_dim), as new float64 arrays."""
        return np.clip((np.asarray(obs, np.float64) - self.shift) * self.scale,
                       -self.clip[0], self.clip[0])


class NormalizedRewards:
    """The loop's replay buffer ``buffer`` (its original rewards), training on r_hat: before a
    round, the filled rows' normalized rewards are written into ``rew`` (the module
    docstring); everything else is the buffer's own."""

    def __init__(self, buffer, vec_normalize):
        self.buffer, self.vec_normalize = buffer, vec_normalize
        self.rew = np.zeros_like(buffer.rew)

    obs = property(lambda self: self.buffer.obs)
    act = property(lambda self: self.buffer.act)
    obs2 = property(lambda self: self.buffer.obs2)
    done = property(lambda self: self.buffer.done)
    size = property(lambda self: self.buffer.size)

    def store_fast(self, obs, act, rew, obs2, done, env=0, ended=True):
        return self.buffer.store_fast(obs, act, rew, obs2, done, env, ended)

    def train(self, agent, batch_size, K, obs_norm=None):
        """The buffer's ``train`` on the normalized rewards."""
        vn = self.vec_normalize
        scaled_rewards_into(self.buffer.rew, self.buffer.size,
                            float(np.sqrt(vn.ret_rms.var + vn.epsilon)),
                            float(vn.clip_reward), self.rew)
        return agent.update_burst(self, batch_size, K, obs_norm)

    def __getattr__(self, name):
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.buffer, name)


class Normalization:
    """What the loop trains with on the VecNormalize ``vec_normalize`` (module docstring)."""

    def __init__(self, vec_normalize):
        self.vec_normalize = vec_normalize
        self.statistics = Statistics(vec_normalize) if vec_normalize.norm_obs else None

    @classmethod
    def of(cls, env):
        """The Normalization of a training env (numddpg.sb3.vecenv.LoopVecEnv handing the loop
        a VecNormalize's original observations), or None."""
        vec_normalize = originals_of(env)
        return None if vec_normalize is None else cls(vec_normalize)

    def loop_parts(self, agent, buffer, policy):
        """(agent, buffer, policy, obs_norm) for the loop: the buffer training on normalized
        rewards (with norm_reward), a policy acting on normalized observations and the
        statistics that normalize the minibatches (with norm_obs)."""
        if self.vec_normalize.norm_reward:
            buffer = NormalizedRewards(buffer, self.vec_normalize)
        if self.statistics is None:
            return agent, buffer, policy, None
        policy = Policy.from_agent(agent, policy.act_dtype, meta=policy.meta,
                                   obs_norm=self.statistics, layout=policy.layout)
        return agent, buffer, policy, self.statistics

    def policy_obs(self, obs):
        """The observations ``obs`` (original) as the policy reads them: SB3's _last_obs."""
        if self.statistics is None:
            return np.array(obs)
        self.statistics.update()
        return self.statistics(obs).astype(np.asarray(obs).dtype)
