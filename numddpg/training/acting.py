"""Acting: the policy of training, evaluation and the policy file, one class for all of them.

    deterministic   a = clip(mid + half * tanh(actor(s)), low, high)          predict, evaluate
    behaviour       a = clip(mid + half * (tanh(actor(s)) + n), low, high)     the loop, n: noise
                    (with probability random_eps, the random action instead: the HER papers')
    random          a = low + (high - low) * U[0, 1)                           before start_steps

``Policy`` is numddpg.files.policy's NumpyPolicy (what a policy file holds: its parameters, its
observation normalization, its action box and the deterministic batch action) with the jitted
forward pass, and the action of one observation per env, with or without noise, on arrays
allocated once: the loop's per-step path.  Policy files are written from it and read back as
it (``Policy.load``) or, with NumPy alone, as a NumpyPolicy (``numddpg.load_policy``).

The deterministic action has two roundings, kept so that no number changes: ``predict`` (and
a loaded policy's call) computes mid + half * u in the network's dtype with NumPy, ``act`` (test
episodes, ``evaluate``) in float64 in the noisy-action kernel with n = 0, rounded once; they
may differ in the last bit of float32.
"""
import numpy as np

from ..checks import check_int, check_memory
from ..engine.noise import noisy_action, uniform_action
from ..engine.normalizer import normalize_into
from ..files import policy as _policy_file
from ..files.policy import NumpyPolicy
from ..kernels.nn import acts_size, mlp_forward
from .envs import EnvFailure, check_obs, check_reward, env_id as _env_id


class Policy(NumpyPolicy):
    """mu(s) = mid + half * tanh(MLP_theta(s)) with the jitted kernels (numddpg.kernels.nn).

    ``act`` (one observation) and ``explore`` (one per env) reuse preallocated arrays: they
    are on the training loop's hot path, and the array they return is overwritten by their
    next call.  ``params`` and the normalization statistics are used by reference, so a
    policy built on an agent's live actor follows its updates.
    """

    def __init__(self, params, layer_sizes, mid, half, low, high, act_dtype="float32",
                 meta=None, obs_norm=None, layout=None):
        super().__init__(params, layer_sizes, mid, half, low, high, act_dtype, meta, obs_norm,
                         layout)
        self.sizes = np.asarray(self.layer_sizes, dtype=np.int64)
        self._clip = None if self.obs_norm is None else np.full(1, self.obs_norm[2])
        self._work = {}                          # n -> the inputs (n, obs_dim) and activations
        self._zeros = np.zeros(self.act_dim, np.float64)
        self._draw = np.zeros(self.act_dim, np.float64)      # noise and uniform draws
        self._a = np.zeros(self.act_dim, kernel_dtype(self.act_dtype))

    @classmethod
    def from_agent(cls, agent, act_dtype=np.float32, meta=None, obs_norm=None, layout=None):
        """The policy of ``agent``'s live actor; obs_norm: its ObsNormalizer, or None; layout:
        the DictLayout of Dict observations, or None."""
        norm = None if obs_norm is None else (obs_norm.shift, obs_norm.scale, obs_norm.clip[0])
        return cls(agent.actor.params, agent.actor.sizes, agent.mid, agent.half,
                   agent.act_low, agent.act_high, act_dtype, meta, norm, layout)

    def forward(self, h):
        """u = tanh(MLP_theta(h)) by the jitted kernel (numddpg.kernels.nn.mlp_forward)."""
        acts = np.empty(acts_size(tuple(self.sizes), h.shape[0]), self.dtype)
        return mlp_forward(self.params, self.sizes, True, h, acts)

    def _forward_rows(self, rows):
        """u = tanh(actor(s)) for the observations ``rows`` (n rows of obs_dim), in arrays
        kept for n: each row is normalized (or cast) into the network's input as it comes."""
        n = len(rows)
        if n not in self._work:
            self._work[n] = (np.zeros((n, self.obs_dim), self.dtype),
                             np.empty(acts_size(tuple(self.sizes), n), self.dtype))
        x, acts = self._work[n]
        for i in range(n):
            if self.obs_norm is None:
                x[i] = rows[i]
            else:
                normalize_into(rows[i], self.obs_norm[0], self.obs_norm[1], self._clip, x[i])
        return mlp_forward(self.params, self.sizes, True, x, acts)

    def act(self, obs, noise=None):
        """clip(mid + half (tanh(actor(obs)) + noise), low, high) for one obs (obs_dim,).

        noise: (act_dim,) float64 in half-range units, or None for the deterministic action.
        """
        u = self._forward_rows((obs,))
        noisy_action(u[0], self.mid, self.half, self._zeros if noise is None else noise,
                     self.low, self.high, self._a)
        return self._a

    def explore(self, obs, noises, rng, out, random_eps=0.0):
        """Behaviour actions of n envs into ``out`` (n, act_dim): row i acts on obs[i] with a
        draw of ``noises[i]`` from ``rng`` (numddpg.engine.noise), drawn in row order.

        random_eps > 0: after row i's noise, one uniform U from ``rng``; if U < random_eps the
        row's action is replaced by a uniform one (act_dim more draws: ``uniform``).  The noise
        is drawn either way, so an Ornstein-Uhlenbeck process runs on as without the random
        actions; with random_eps 0 nothing more is drawn."""
        u = self._forward_rows(obs)
        for i, noise in enumerate(noises):
            noisy_action(u[i], self.mid, self.half, noise.sample(rng, self._draw), self.low,
                         self.high, out[i])
            if random_eps > 0.0 and rng.random() < random_eps:
                rng.random(out=self._draw)
                uniform_action(self._draw, self.low, self.high, out[i])
        return out

    def uniform(self, rng, out):
        """Uniform actions on [low, high] into the rows of ``out``, from ``rng`` (the loop's
        generator, not action_space.sample(): a run is reproducible from its seed alone)."""
        for i in range(len(out)):
            rng.random(out=self._draw)
            uniform_action(self._draw, self.low, self.high, out[i])
        return out


def kernel_dtype(dtype):
    """The dtype the kernels compute an action of ``dtype`` in: itself for float32/float64, and
    float32 for others (float16 spaces: Numba has no float16 arithmetic); env_action casts."""
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def env_action(a, dtype):
    """``a`` in the env's action dtype (a copy only when that differs from the kernels')."""
    return a if a.dtype == dtype else a.astype(dtype)


def save_policy(path, policy):
    """Write ``policy`` (actor params, layer sizes, mid, half, bounds, normalization) and its
    ``meta`` dict to a policy file (numddpg.files.policy's format), atomically.  The NumPy-only
    ``numddpg.load_policy`` reads it, and ``Policy.load``."""
    return _policy_file.save_policy(path, policy.params, policy.layer_sizes, policy.mid,
                                    policy.half, policy.low, policy.high, policy.act_dtype,
                                    obs_norm=policy.obs_norm, obs_layout=policy.layout,
                                    **policy.meta)


def reset_seed(rng):
    """The seed of an env reset, drawn from ``rng`` (the loop's generator, or evaluation's):
    every reset is seeded, so that a run repeats from its seed alone."""
    return int(rng.integers(2**31))


def success_flag(value, name):
    """An info's "is_success" as 1.0 or 0.0 (a bool, 0/1 or a one-element array of them), or
    EnvFailure naming the env."""
    real = isinstance(value, (bool, int, float, np.generic, np.ndarray))
    arr = np.asarray(value) if real else None
    if (arr is None or arr.size != 1 or arr.dtype.kind not in "biuf"
            or arr.reshape(()) not in (0, 1)):
        raise EnvFailure(f"{name}: info['is_success'] is {value!r:.100}; a goal env reports 0/1 "
                         "or a boolean there")
    return float(arr.reshape(()))


def run_episodes(policy, env, n_episodes, rng, max_ep_len=None, successes=None):
    """Returns and lengths of ``n_episodes`` deterministic episodes of ``policy`` on ``env``.

    Every reset is seeded from ``rng`` (a numpy Generator).  Returns two float64 arrays.
    Dict observations are flattened by ``policy.layout``.  successes : a list, or None; each
    episode whose last step's info has "is_success" (a goal env's) appends it as 0.0 or 1.0.
    """
    n_episodes = check_int("n_episodes", n_episodes, 0)
    check_memory(16 * n_episodes, f"{n_episodes:,} test episodes' returns and lengths")
    returns = np.zeros(n_episodes)
    lengths = np.zeros(n_episodes)
    act, name, o, layout = policy.act, _env_id(env), policy.obs_dim, policy.layout
    act_dtype = env.action_space.dtype
    for i in range(int(n_episodes)):
        obs = check_obs(env.reset(seed=reset_seed(rng))[0], o, name, "reset", layout=layout)
        ep_ret, ep_len, over = 0.0, 0, False
        while not over:
            obs, r, terminated, truncated, info = env.step(env_action(act(obs), act_dtype))
            ep_len += 1
            obs = check_obs(obs, o, name, f"step {ep_len} of a test episode", layout=layout)
            ep_ret += check_reward(r, name, "step of a test episode", ep_len)
            over = terminated or truncated or (max_ep_len is not None and ep_len >= max_ep_len)
        returns[i], lengths[i] = ep_ret, ep_len
        if successes is not None and isinstance(info, dict) and "is_success" in info:
            successes.append(success_flag(info["is_success"], name))
    return returns, lengths
