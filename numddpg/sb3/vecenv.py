"""Stable-Baselines3's VecEnv API, both ways, without importing SB3.

SB3's VecEnv (DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize, ... or any object with the
same methods): ``num_envs``, ``observation_space`` and ``action_space`` of one env,
``reset() -> obs``, ``step_async(actions)`` then ``step_wait() -> (obs, rewards, dones,
infos)``.  An env whose episode ended (dones[i] = terminated or truncated) is already reset:
obs[i] starts its next episode, infos[i]["terminal_observation"] is the last one and
infos[i]["TimeLimit.truncated"] says a time limit cut it.

    LoopVecEnv      an SB3 VecEnv as the gymnasium vector env numddpg's loop steps, in
                    gymnasium's SAME_STEP autoreset mode (the same semantics: the final
                    observation in info["final_obs"]), its observations and actions flat
                    (numddpg.sb3.spaces; Dicts of flat entries), and its goal envs'
                    compute_reward through ``env_method`` (for HerReplayBuffer)
    OneEnvVecEnv    a gymnasium Env behind SB3's VecEnv API (a DummyVecEnv of one), for
                    ``model.get_env()``

With a VecNormalize in the VecEnv (of Box observations) and ``originals``, as the loop trains
(numddpg.sb3.vecnormalize): the loop gets the VecNormalize's original observations and
rewards, and an ended episode's terminal observation unnormalized (as SB3 stores them); the
step's infos keep what the VecEnv returned (``StepInfos.returned``: its normalized
observations and rewards) for the callbacks.
"""
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from .spaces import Preprocessing

VEC_ENV_METHODS = ("reset", "step_async", "step_wait")
VEC_ENV_ATTRIBUTES = ("num_envs", "observation_space", "action_space")


def is_vec_env(env):
    """Whether ``env`` has SB3's VecEnv API (and is not a gymnasium vector env)."""
    if isinstance(env, (gym.Env, gym.vector.VectorEnv)):
        return False
    return (all(callable(getattr(env, m, None)) for m in VEC_ENV_METHODS)
            and all(hasattr(env, a) for a in VEC_ENV_ATTRIBUTES))


def vec_normalize_of(env):
    """The VecNormalize in the chain of VecEnv wrappers ``env`` (each ``.venv`` the next), or
    None: the first with the running statistics ``obs_rms`` and ``ret_rms``."""
    while env is not None:
        if hasattr(env, "obs_rms") and hasattr(env, "ret_rms"):
            return env
        env = getattr(env, "venv", None)
    return None


def shared_spec(venv):
    """The gymnasium spec all envs of the SB3 VecEnv ``venv`` were made from (its
    ``get_attr("spec")``), or None: without one, or when they differ."""
    get_attr = getattr(venv, "get_attr", None)
    specs = get_attr("spec") if callable(get_attr) else [None]
    first = specs[0] if len(specs) else None
    return first if first is not None and all(s == first for s in specs) else None


def originals_of(env):
    """The VecNormalize whose original observations and rewards the LoopVecEnv ``env`` hands
    the loop, or None (another env, or no VecNormalize, or ``originals`` off)."""
    return getattr(env, "originals", None) if isinstance(env, LoopVecEnv) else None


def _originals(venv):
    """The VecNormalize of ``venv`` whose original observations and rewards the loop can
    store: None without one or for Dict observations (per-key statistics: trained on as
    returned); ValueError when a wrapper above it changes the observations."""
    vec_normalize = vec_normalize_of(venv)
    if vec_normalize is None or not hasattr(vec_normalize, "get_original_obs") or \
            isinstance(vec_normalize.observation_space, gym.spaces.Dict):
        return None
    if venv.observation_space.shape != vec_normalize.observation_space.shape:
        raise ValueError(f"{venv!r}: a VecEnv wrapper above its VecNormalize changes the "
                         f"observations ({vec_normalize.observation_space.shape} -> "
                         f"{venv.observation_space.shape}), so the VecNormalize's original "
                         "observations are not the ones trained on; put VecNormalize "
                         "outermost (as SB3's off-policy algorithms need too)")
    return vec_normalize


class StepInfos(dict):
    """A step's infos as gymnasium's vector envs give them (``final_obs`` with its
    ``_final_obs`` mask), and as the VecEnv gave them: ``per_env``, one dict per env (what SB3's
    callbacks read in ``locals["infos"]``); ``returned``: (observations, rewards) as the VecEnv
    returned them when the loop gets others (a VecNormalize's originals), else None."""

    def __init__(self, per_env, returned=None):
        super().__init__()
        self.per_env = per_env
        self.returned = returned


class LoopVecEnv(gym.vector.VectorEnv):
    """An SB3 VecEnv ``venv`` as a gymnasium vector env in SAME_STEP autoreset mode.

    terminated[i] = dones[i] and not infos[i]["TimeLimit.truncated"], so a time limit
    bootstraps from the terminal observation; with ``handle_timeout_termination=False`` (SB3's
    ReplayBuffer argument) every done is a termination.  ``reset(seed=s)`` seeds the VecEnv's
    next reset (``venv.seed(s)``: env i gets s + i).  ``preprocess=False`` keeps the VecEnv's
    observations and actions as they are (for evaluate_policy, whose model.predict maps them).
    ``originals``: the loop gets a VecNormalize's original observations and rewards (the
    module docstring); ``self.originals`` is that VecNormalize, or None.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, venv, handle_timeout_termination=True, preprocess=True,
                 originals=False):
        self.venv = venv
        self.originals = _originals(venv) if originals else None
        self.handle_timeout_termination = bool(handle_timeout_termination)
        self.num_envs = int(venv.num_envs)
        self.preprocessing = Preprocessing(venv.observation_space, venv.action_space,
                                           identity=not preprocess)
        self.single_observation_space = self.preprocessing.flat_observation_space
        self.single_action_space = self.preprocessing.flat_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        # a file then records the env's id, from which load() without env makes one
        self.spec = shared_spec(venv)

    def reset(self, *, seed=None, options=None):
        if seed is not None and callable(getattr(self.venv, "seed", None)):
            self.venv.seed(int(seed))
        obs = self.venv.reset()
        if self.originals is not None:
            obs = self.originals.get_original_obs()
        return self.preprocessing.obs(obs), {}

    def step(self, actions):
        self.venv.step_async(self.preprocessing.actions(actions))
        obs, rewards, dones, infos = self.venv.step_wait()
        returned, terminal = None, infos      # (terminal: the infos final_obs is read from)
        if self.originals is not None:
            returned = (obs, rewards)
            obs, rewards, terminal = self._originals(infos, dones)
        dones = np.asarray(dones, dtype=bool)
        truncated = np.array([bool(d and info.get("TimeLimit.truncated", False))
                              for d, info in zip(dones, infos)])
        if not self.handle_timeout_termination:
            truncated[:] = False
        out = StepInfos(list(infos), returned)
        if dones.any():
            out["final_obs"], out["_final_obs"] = self._final_obs(obs, terminal, dones), dones
        return (self.preprocessing.obs(obs), np.asarray(rewards), dones & ~truncated,
                truncated, out)

    def _final_obs(self, obs, infos, dones):
        """The step's observations with each ended env's replaced by its terminal one, mapped
        (of Dict observations: an object array of one Dict per env, as gymnasium's vector envs
        give them)."""
        ended = np.flatnonzero(dones)
        if isinstance(obs, dict):
            final = np.empty(self.num_envs, object)
            for i in ended:
                one = {k: np.asarray(v)[None] for k, v in infos[i]["terminal_observation"].items()}
                final[i] = {k: v[0] for k, v in self.preprocessing.obs(one).items()}
            return final
        final = np.array(obs, copy=True)
        final[ended] = [infos[i]["terminal_observation"] for i in ended]
        return self.preprocessing.obs(final)

    def compute_reward(self, achieved_goal, desired_goal, infos):
        """The first env's ``compute_reward`` (as SB3's HerReplayBuffer calls it: env_method,
        indices=[0]) for m goal pairs given as the networks read them ((m, g) each), handed
        to it in the env's own form (numddpg.sb3.spaces.DictEntry.values)."""
        pre = self.preprocessing
        if pre.entries is not None:
            achieved_goal = pre.goal_values("achieved_goal", achieved_goal)
            desired_goal = pre.goal_values("desired_goal", desired_goal)
        return self.venv.env_method("compute_reward", achieved_goal, desired_goal, infos,
                                    indices=[0])[0]

    def _originals(self, infos, dones):
        """(original observations, original rewards, infos whose terminal observations are
        unnormalized) of the step just taken, as SB3 stores them: the VecNormalize normalized
        each terminal observation with the statistics it has now, and unnormalizing it with
        them gives the original back (up to rounding, and to its clip)."""
        vn = self.originals
        if vn.norm_obs and np.any(dones):
            infos = [dict(info, terminal_observation=vn.unnormalize_obs(
                info["terminal_observation"])) if done and "terminal_observation" in info
                     else info for info, done in zip(infos, dones)]
        return vn.get_original_obs(), vn.get_original_reward(), infos

    def close_extras(self, **kwargs):
        self.venv.close()

    def __repr__(self):
        return f"LoopVecEnv({self.venv!r})"


class OneEnvVecEnv:
    """A gymnasium Env ``env`` behind SB3's VecEnv API (as SB3's DummyVecEnv of one): batched
    observations (1, ...), an ended episode's env reset at once with its last observation in
    info["terminal_observation"] and info["TimeLimit.truncated"]."""

    num_envs = 1

    def __init__(self, env):
        self.env = env
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.render_mode = getattr(env, "render_mode", None)
        self._seed, self._options, self._actions = None, {}, None

    @property
    def envs(self):
        return [self.env]

    @property
    def unwrapped(self):
        return self

    def seed(self, seed=None):
        """Seed the next reset (SB3: env i gets seed + i); returns [seed]."""
        self._seed = seed
        return [seed]

    def set_options(self, options=None):
        self._options = dict(options or {})

    def reset(self):
        obs, _ = self.env.reset(seed=self._seed, options=self._options or None)
        self._seed = None
        return np.asarray(obs)[None]

    def step_async(self, actions):
        self._actions = actions

    def step_wait(self):
        action = np.asarray(self._actions)
        action = action.reshape(self.action_space.shape) if action.ndim else action
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        done = bool(terminated or truncated)
        if done:
            info["TimeLimit.truncated"] = bool(truncated and not terminated)
            info["terminal_observation"] = obs
            obs, _ = self.env.reset()
        return (np.asarray(obs)[None], np.array([reward], np.float32), np.array([done]),
                [info])

    def step(self, actions):
        self.step_async(actions)
        return self.step_wait()

    def close(self):
        self.env.close()

    def get_attr(self, attr_name, indices=None):
        return [getattr(self.env, attr_name)]

    def set_attr(self, attr_name, value, indices=None):
        setattr(self.env, attr_name, value)

    def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
        return [getattr(self.env, method_name)(*method_args, **method_kwargs)]

    def env_is_wrapped(self, wrapper_class, indices=None):
        env = self.env
        while isinstance(env, gym.Wrapper):
            if isinstance(env, wrapper_class):
                return [True]
            env = env.env
        return [False]

    def has_attr(self, attr_name):
        return hasattr(self.env, attr_name)

    def render(self, mode=None):
        return self.env.render()

    def get_images(self):
        return [self.env.render()]

    def __repr__(self):
        return f"OneEnvVecEnv({self.env!r})"
