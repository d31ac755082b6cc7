"""SB3's ``make_vec_env`` and ``evaluate_policy`` (single envs, gymnasium vector envs and SB3
VecEnvs).
"""
import gymnasium as gym
import numpy as np

from ..checks import check_bool, check_int
from ..training.envs import env_info as sub_info
from .vecenv import LoopVecEnv, is_vec_env


def autoreset_mode(env):
    """A vector env's gymnasium AutoresetMode (NEXT_STEP unless its metadata says)."""
    return gym.vector.AutoresetMode(env.metadata.get("autoreset_mode",
                                                     gym.vector.AutoresetMode.NEXT_STEP))


def check_eval_env(name, env):
    """``env`` if it is a gymnasium Env or vector env or an SB3 VecEnv (what evaluate_policy
    steps)."""
    if isinstance(env, (gym.Env, gym.vector.VectorEnv)) or is_vec_env(env):
        return env
    raise TypeError(f"{name} must be a gymnasium.Env, a gymnasium vector env or an SB3 VecEnv, "
                    f"got {env!r} ({type(env).__name__})")


def make_vec_env(env_id, n_envs=1, seed=None, start_index=0, monitor_dir=None,
                 wrapper_class=None, env_kwargs=None, vec_env_cls=None, vec_env_kwargs=None,
                 monitor_kwargs=None, wrapper_kwargs=None):
    """A gymnasium vector env of ``n_envs`` copies of ``env_id`` (an id or a function that
    makes an env), SB3's signature.  Each sub-env is wrapped in gymnasium's
    RecordEpisodeStatistics (SB3's Monitor: info["episode"] = {"r", "l", "t"}), then in
    ``wrapper_class(env, **wrapper_kwargs)``.  vec_env_cls: gymnasium's SyncVectorEnv (default;
    SB3's "DummyVecEnv" means it too) or AsyncVectorEnv ("SubprocVecEnv").  seed: sub-env i's
    first reset is seeded with seed + start_index + i.

    Unlike SB3's VecEnv, the result has gymnasium's API (reset() -> (obs, infos), step() -> five
    values).  numddpg's models train on it as it is (one transition per sub-env and step).
    """
    n_envs = check_int("n_envs", n_envs, 1)
    start_index = check_int("start_index", start_index, 0)
    if seed is not None:
        seed = check_int("seed", seed, 0)
    if monitor_dir is not None:
        raise ValueError(f"monitor_dir={monitor_dir!r}: numddpg writes one monitor.csv per run "
                         "(in a native model's run directory, numddpg.runlog), not one per "
                         "sub-env; pass monitor_dir=None (episode statistics are in "
                         "info['episode'])")
    for name, kw in (("env_kwargs", env_kwargs), ("vec_env_kwargs", vec_env_kwargs),
                     ("wrapper_kwargs", wrapper_kwargs)):
        if kw is not None and not isinstance(kw, dict):
            raise TypeError(f"{name} must be a dict or None, got {kw!r}")
    if monitor_kwargs:
        raise ValueError(f"monitor_kwargs={monitor_kwargs!r}: gymnasium's "
                         "RecordEpisodeStatistics, numddpg's Monitor, takes none")
    if not (isinstance(env_id, str) or callable(env_id)):
        raise TypeError(f"env_id must be a gymnasium id or a function returning an env, got "
                        f"{env_id!r}")
    if wrapper_class is not None and not callable(wrapper_class):
        raise TypeError(f"wrapper_class must be callable (env -> env), got {wrapper_class!r}")
    cls = _vector_class(vec_env_cls)
    env_kwargs, wrapper_kwargs = dict(env_kwargs or {}), dict(wrapper_kwargs or {})

    wrappers = [gym.wrappers.RecordEpisodeStatistics]
    if wrapper_class is not None:
        wrappers.append(lambda env: wrapper_class(env, **wrapper_kwargs))
    if isinstance(env_id, str):                 # gymnasium.make_vec: the vector env has a spec
        mode = "async" if cls is gym.vector.AsyncVectorEnv else "sync"
        vec_env = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode,
                               vector_kwargs=vec_env_kwargs, wrappers=wrappers, **env_kwargs)
    else:
        def make_env():
            env = env_id(**env_kwargs)
            for wrap in wrappers:
                env = wrap(env)
            return env
        vec_env = cls([make_env for _ in range(n_envs)], **(vec_env_kwargs or {}))
    if seed is not None:
        vec_env.reset(seed=seed + start_index)      # sub-env i: seed + start_index + i
        vec_env.action_space.seed(seed + start_index)
    return vec_env


def _vector_class(vec_env_cls):
    """gymnasium's vector env class that SB3's ``vec_env_cls`` means (default: sync)."""
    classes = {None: gym.vector.SyncVectorEnv, "DummyVecEnv": gym.vector.SyncVectorEnv,
               "SubprocVecEnv": gym.vector.AsyncVectorEnv}
    name = vec_env_cls if vec_env_cls is None else getattr(vec_env_cls, "__name__", None)
    if vec_env_cls in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        return vec_env_cls
    if name in classes:
        return classes[name]
    raise ValueError(f"vec_env_cls must be gymnasium.vector.SyncVectorEnv or AsyncVectorEnv "
                     f"(or SB3's DummyVecEnv / SubprocVecEnv, which mean them), got "
                     f"{vec_env_cls!r}")


def evaluate_policy(model, env, n_eval_episodes=10, deterministic=True, render=False,
                    callback=None, reward_threshold=None, return_episode_rewards=False,
                    warn=True):
    """Run ``model.predict`` for ``n_eval_episodes`` episodes on ``env`` (SB3's signature).

    env : a gymnasium Env, a gymnasium vector env or an SB3 VecEnv (the episodes are divided
        among its sub-envs as evenly as possible, as SB3 does, so that short episodes are not
        favoured).
    callback : f(locals, globals) after every counted step (locals hold "reward", "done",
        "info", "i", ...).
    reward_threshold : AssertionError if the mean return is not above it.
    Returns (mean, std) of the returns, or (returns, lengths) as two lists with
    ``return_episode_rewards``.  A return is the sum of the rewards the env gives (SB3 prefers
    its Monitor's; with gymnasium's RecordEpisodeStatistics outermost the two agree).  ``warn``
    is accepted for SB3's signature: there is no Monitor to warn about.
    """
    n_eval_episodes = check_int("n_eval_episodes", n_eval_episodes, 1)
    deterministic = check_bool("deterministic", deterministic)
    render = check_bool("render", render)
    return_episode_rewards = check_bool("return_episode_rewards", return_episode_rewards)
    check_bool("warn", warn)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function (locals, globals) or None, got "
                        f"{callback!r}")
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"model must have a predict(obs, state, episode_start, deterministic) "
                        f"method, got {model!r}")
    env = check_eval_env("env", env)
    if is_vec_env(env):                    # stepped as a SAME_STEP vector env, as it is
        env = LoopVecEnv(env, preprocess=False)
    if isinstance(env, gym.vector.VectorEnv):
        returns, lengths = _evaluate_vector(model, env, n_eval_episodes, deterministic, render,
                                            callback)
    else:
        returns, lengths = _evaluate_single(model, env, n_eval_episodes, deterministic, render,
                                            callback)
    mean_reward, std_reward = float(np.mean(returns)), float(np.std(returns))
    if reward_threshold is not None:
        assert mean_reward > reward_threshold, (f"Mean reward below threshold: "
                                                f"{mean_reward:.2f} < {reward_threshold:.2f}")
    if return_episode_rewards:
        return returns, lengths
    return mean_reward, std_reward


def _evaluate_single(model, env, n_eval_episodes, deterministic, render, callback):
    episode_rewards, episode_lengths = [], []
    observations, _ = env.reset()
    states, episode_starts = None, np.ones(1, dtype=bool)
    current_reward, current_length, i = 0.0, 0, 0
    while len(episode_rewards) < n_eval_episodes:
        actions, states = model.predict(observations, state=states,
                                        episode_start=episode_starts,
                                        deterministic=deterministic)
        new_observations, reward, terminated, truncated, info = env.step(actions)
        current_reward += float(reward)
        current_length += 1
        done = bool(terminated or truncated)
        episode_starts[0] = done
        if callback is not None:
            callback(locals(), globals())
        if done:
            episode_rewards.append(current_reward)
            episode_lengths.append(current_length)
            current_reward, current_length = 0.0, 0
            new_observations, _ = env.reset()
        observations = new_observations
        if render:
            env.render()
    return episode_rewards, episode_lengths


def _evaluate_vector(model, env, n_eval_episodes, deterministic, render, callback):
    n_envs = env.num_envs
    mode = autoreset_mode(env)
    episode_rewards, episode_lengths = [], []
    episode_counts = np.zeros(n_envs, dtype=int)
    episode_count_targets = np.array([(n_eval_episodes + i) // n_envs for i in range(n_envs)])
    current_rewards, current_lengths = np.zeros(n_envs), np.zeros(n_envs, dtype=int)
    resetting = np.zeros(n_envs, dtype=bool)     # NEXT_STEP: this step only resets sub-env i
    observations, _ = env.reset()
    states, episode_starts = None, np.ones(n_envs, dtype=bool)
    while (episode_counts < episode_count_targets).any():
        actions, states = model.predict(observations, state=states,
                                        episode_start=episode_starts,
                                        deterministic=deterministic)
        new_observations, rewards, terminated, truncated, infos = env.step(actions)
        dones = np.logical_or(terminated, truncated)
        for i in range(n_envs):
            if resetting[i]:
                resetting[i] = False
                continue
            current_rewards[i] += rewards[i]
            current_lengths[i] += 1
            if episode_counts[i] < episode_count_targets[i]:
                reward, done = float(rewards[i]), bool(dones[i])
                info = sub_info(infos, i)
                episode_starts[i] = done
                if callback is not None:
                    callback(locals(), globals())
                if done:
                    episode_rewards.append(float(current_rewards[i]))
                    episode_lengths.append(int(current_lengths[i]))
                    episode_counts[i] += 1
            if dones[i]:
                current_rewards[i], current_lengths[i] = 0.0, 0
                resetting[i] = mode == gym.vector.AutoresetMode.NEXT_STEP
        if mode == gym.vector.AutoresetMode.DISABLED and dones.any():
            new_observations, _ = env.reset(options={"reset_mask": dones})
        observations = new_observations
        if render:
            env.render()
    return episode_rewards, episode_lengths
