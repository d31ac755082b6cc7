"""numddpg.sb3: code written for Stable-Baselines3's DDPG/TD3 runs unchanged.

The scripts below are SB3's documented usage (names, arguments, return values) with tiny
networks and a few thousand steps at most; SB3 itself is never imported.  Also: the callback
protocol's order and the False-return stop, the mapping of SB3's arguments onto numddpg's
hyperparameters, the noise classes against numddpg's own processes, files, and the errors for
what numddpg cannot do.
"""
import ast
import inspect
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, strategies as st

from numddpg.files.checkpoint import CheckpointError
from numddpg.training.envs import EnvError
from numddpg.engine.hyperparameters import TD3_TABLE
from numddpg.engine.noise import GaussianNoise, OUNoise
from numddpg.sb3 import (DDPG, TD3, BaseCallback, CallbackList, CheckpointCallback, EvalCallback,
                         EveryNTimesteps, NormalActionNoise, OrnsteinUhlenbeckActionNoise,
                         StopTrainingOnMaxEpisodes, StopTrainingOnNoModelImprovement,
                         StopTrainingOnRewardThreshold, evaluate_policy, make_vec_env)

TINY = dict(net_arch=[16, 16])


# torch's optimizers, matched by name (numddpg never imports torch)
class RMSprop:
    """Stands for torch.optim.RMSprop."""


class AdamW:
    """Stands for torch.optim.AdamW."""


class Adam:
    """Stands for torch.optim.Adam."""


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    """One row chunk: no per-shape calibration (numddpg.kernels.threads), the same result anyway."""
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


class Recorder(BaseCallback):
    """Records every hook the loop calls, and stops when ``stop_at`` steps are reached."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.events, self.stop_at, self.seen = [], stop_at, []

    def _init_callback(self):
        self.events.append("init")

    def _on_training_start(self):
        self.events.append("training_start")

    def _on_rollout_start(self):
        self.events.append("rollout_start")

    def _on_step(self):
        self.events.append("step")
        loc = self.locals
        self.seen.append((loc["self"], loc["new_obs"].shape, loc["actions"].shape,
                          loc["rewards"].shape, loc["dones"].shape, len(loc["infos"]),
                          self.num_timesteps))
        return self.stop_at is None or self.n_calls < self.stop_at

    def _on_rollout_end(self):
        self.events.append("rollout_end")

    def _on_training_end(self):
        self.events.append("training_end")


# ---------------------------------------------------------------------------------------------
# A typical SB3 script, unchanged but for the import line
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("Algo", [DDPG, TD3])
def test_typical_sb3_script_runs_unchanged(Algo, tmp_path):
    env = gym.make("Pendulum-v1")
    n_actions = env.action_space.shape[-1]
    action_noise = NormalActionNoise(mean=np.zeros(n_actions), sigma=0.1 * np.ones(n_actions))
    eval_env = gym.make("Pendulum-v1")
    stop = StopTrainingOnRewardThreshold(reward_threshold=1e9, verbose=1)   # never reached
    eval_callback = EvalCallback(eval_env, callback_on_new_best=stop, n_eval_episodes=2,
                                 eval_freq=400, best_model_save_path=str(tmp_path / "best"),
                                 log_path=str(tmp_path / "logs"), deterministic=True,
                                 verbose=0)
    checkpoint_callback = CheckpointCallback(save_freq=500, save_path=str(tmp_path / "ckpt"),
                                             name_prefix="rl_model", save_replay_buffer=True)
    model = Algo("MlpPolicy", env, action_noise=action_noise, learning_starts=200,
                 batch_size=64, policy_kwargs=TINY, verbose=0, seed=0)
    model.learn(total_timesteps=1000, callback=CallbackList([eval_callback,
                                                             checkpoint_callback]))
    assert model.num_timesteps == 1000
    assert eval_callback.evaluations_timesteps == [400, 800]
    assert np.isfinite(eval_callback.best_mean_reward)
    assert sorted(os.listdir(tmp_path / "ckpt")) == [
        "rl_model_1000_steps.zip", "rl_model_500_steps.zip",
        "rl_model_replay_buffer_1000_steps.npz", "rl_model_replay_buffer_500_steps.npz"]
    assert os.listdir(tmp_path / "best") == ["best_model.zip"]
    with np.load(tmp_path / "logs" / "evaluations.npz") as f:    # numbers only: no pickle
        assert f["timesteps"].tolist() == [400, 800] and f["results"].shape == (2, 2)

    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=2)
    assert isinstance(mean_reward, float) and isinstance(std_reward, float)

    model.save(tmp_path / "pendulum")                 # pendulum.zip, as SB3's
    vec_env = model.get_env()                         # SB3's VecEnv API
    vec_env.seed(3)
    obs = vec_env.reset()
    before, _ = model.predict(obs)
    del model
    model = Algo.load(tmp_path / "pendulum")
    action, state = model.predict(obs, deterministic=True)
    assert state is None and action.shape == (1, n_actions)
    np.testing.assert_array_equal(action, before)                       # the same parameters
    Algo.load(tmp_path / "ckpt" / "rl_model_500_steps")                 # a loadable model
    assert model.num_timesteps == 1000
    assert isinstance(model.action_noise, NormalActionNoise)      # recorded as act_noise=0.1
    np.testing.assert_array_equal(model.action_noise._sigma, [0.1])


def test_stop_training_on_reward_threshold_stops_at_the_first_evaluation():
    eval_env = gym.make("Pendulum-v1")
    stop = StopTrainingOnRewardThreshold(reward_threshold=-1e9)          # always reached
    callback = EvalCallback(eval_env, callback_on_new_best=stop, eval_freq=50,
                            n_eval_episodes=1, verbose=0)
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=20, batch_size=16,
                 policy_kwargs=TINY, seed=1)
    model.learn(10_000, callback=callback)
    assert model.num_timesteps == 50
    assert stop.n_calls == 1 and stop.parent is callback


def test_neither_torch_nor_sb3_is_imported():
    code = ("import sys, numddpg.sb3, numddpg.sb3.callbacks, numddpg.sb3.zoo; "
            "print(sorted(m for m in ('torch', 'stable_baselines3', 'sbx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# The callback protocol
# ---------------------------------------------------------------------------------------------

def test_callback_hooks_in_sb3_order():
    rec = Recorder()
    model = TD3("MlpPolicy", "Pendulum-v1", learning_starts=10, train_freq=5, gradient_steps=2,
                batch_size=8, policy_kwargs=TINY, seed=0)
    model.learn(30, callback=rec)
    # training rounds after env steps 15, 20, 25, 30 (SB3 trains once num_timesteps > 10)
    ev = rec.events
    assert ev[:3] == ["init", "training_start", "rollout_start"] and ev[-1] == "training_end"
    body = ev[3:-1]
    assert body.count("step") == 30 and rec.n_calls == 30
    ends = [i for i, e in enumerate(body) if e == "rollout_end"]
    assert [body[:i].count("step") for i in ends] == [15, 20, 25, 30]
    assert all(body[i + 1] == "rollout_start" for i in ends[:-1])
    assert model.native.agent.q_optim.t == 8                          # 4 rounds x 2 updates
    assert all(s[0] is model for s in rec.seen)                       # locals["self"]
    assert {s[1:6] for s in rec.seen} == {((1, 3), (1, 1), (1,), (1,), 1)}
    assert [s[6] for s in rec.seen] == list(range(1, 31))             # num_timesteps


def test_false_from_on_step_stops_cleanly_and_learn_continues():
    rec = Recorder(stop_at=7)
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=3, batch_size=4, policy_kwargs=TINY,
                 seed=0)
    assert model.learn(100, callback=rec) is model
    assert model.num_timesteps == 7 and rec.events[-1] == "training_end"
    model.learn(5, reset_num_timesteps=False)
    assert model.num_timesteps == 12
    model.learn(5)                                  # reset_num_timesteps=True: counts from 0
    assert model.num_timesteps == 5 and model.native.t == 17


def test_functional_callback_and_list_are_converted():
    calls = []
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=3, batch_size=4, policy_kwargs=TINY,
                 seed=0)
    model.learn(4, callback=lambda loc, glob: calls.append(loc["rewards"]) is None)
    assert len(calls) == 4 and calls[0].shape == (1,)
    rec = Recorder()
    model.learn(2, callback=[rec])
    assert rec.n_calls == 2 and rec.events[0] == "init"


class _Parent:
    best_mean_reward = -math.inf


def _bound(cb, parent=None):
    cb.init_callback(type("M", (), {"num_timesteps": 0})())
    cb.parent = parent
    return cb


def test_stop_on_no_model_improvement_counts_evaluations_without_a_new_best():
    parent = _Parent()
    cb = _bound(StopTrainingOnNoModelImprovement(max_no_improvement_evals=2, min_evals=1),
                parent)
    results = []
    for best in [-10.0, -5.0, -5.0, -5.0, -5.0]:        # evaluation 1 is not counted (min_evals)
        parent.best_mean_reward = best
        results.append(cb.on_step())
    assert results == [True, True, True, True, False]
    assert cb.no_improvement_evals == 3


class Counter(BaseCallback):
    def _on_step(self):
        return True


def test_every_n_timesteps_runs_its_child_every_n_steps():
    child = Counter()
    model = type("M", (), {"num_timesteps": 0})()
    cb = EveryNTimesteps(n_steps=3, callback=child)
    cb.init_callback(model)
    for t in range(1, 11):
        model.num_timesteps = t
        cb.on_step()
    assert child.n_calls == 3 and child.parent is cb            # at 3, 6, 9


def test_stop_on_max_episodes():
    model = DDPG("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), learning_starts=5,
                 batch_size=4, train_freq=10, policy_kwargs=TINY, seed=0)
    model.learn(10_000, callback=StopTrainingOnMaxEpisodes(max_episodes=1))
    assert model.num_timesteps == 400 and model._episode_num == 2    # one 200-step one per env


class Succeeds(gym.Wrapper):
    """Pendulum whose episodes succeed when they reach their time limit."""

    def step(self, action):
        obs, r, terminated, truncated, info = self.env.step(action)
        return obs, r, terminated, truncated, dict(info, is_success=truncated)


def test_eval_callback_logs_success_rate(tmp_path):
    callback = EvalCallback(Succeeds(gym.make("Pendulum-v1")), eval_freq=20, n_eval_episodes=2,
                            log_path=str(tmp_path), verbose=0)
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=5, batch_size=4,
                 policy_kwargs=TINY, seed=0)
    model.learn(20, callback=callback)
    with np.load(tmp_path / "evaluations.npz") as f:
        assert f["successes"].tolist() == [[1.0, 1.0]] and f["ep_lengths"].tolist() == [[200,
                                                                                        200]]


def test_reward_threshold_needs_an_eval_callback():
    with pytest.raises(RuntimeError, match="EvalCallback"):
        _bound(StopTrainingOnRewardThreshold(0.0)).on_step()


@pytest.mark.parametrize("make, match", [
    (lambda: EvalCallback("Pendulum-v1"), "eval_env"),
    (lambda: EvalCallback(gym.make("Pendulum-v1"), n_eval_episodes=0), "n_eval_episodes"),
    (lambda: EvalCallback(gym.make("Pendulum-v1"), callback_on_new_best=print),
     "callback_on_new_best"),
    (lambda: CheckpointCallback(save_freq=0, save_path="x"), "save_freq"),
    (lambda: CheckpointCallback(save_freq=1, save_path=None), "save_path"),
    (lambda: CheckpointCallback(save_freq=1, save_path="x", name_prefix="a/b"), "name_prefix"),
    (lambda: StopTrainingOnRewardThreshold(float("nan")), "reward_threshold"),
    (lambda: StopTrainingOnNoModelImprovement(-1), "max_no_improvement_evals"),
    (lambda: EveryNTimesteps(0, Recorder()), "n_steps"),
    (lambda: CallbackList(Recorder()), "callbacks"),
    (lambda: Recorder().__class__.__base__(verbose=-1), "verbose"),
])
def test_callback_arguments_are_checked(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


# ---------------------------------------------------------------------------------------------
# SB3's arguments as numddpg's hyperparameters
# ---------------------------------------------------------------------------------------------

def test_sb3_defaults_map_onto_numddpg():
    hp = DDPG("MlpPolicy", "Pendulum-v1", seed=0).native.hyperparameters
    assert (hp["pi_lr"], hp["q_lr"], hp["replay_size"], hp["batch_size"]) == (1e-3, 1e-3,
                                                                               1_000_000, 256)
    assert hp["polyak"] == 1 - 0.005 and hp["gamma"] == 0.99
    assert (hp["start_steps"], hp["update_after"], hp["update_every"],
            hp["gradient_steps"]) == (100, 101, 1, 1)
    assert hp["noise"] == "none" and hp["hidden_sizes"] == (400, 300)
    assert hp["qf_hidden_sizes"] is None and hp["num_test_episodes"] == 0
    td3 = TD3("MlpPolicy", "Pendulum-v1", seed=0)
    hp = td3.native.hyperparameters
    assert (hp["policy_delay"], hp["target_noise"], hp["noise_clip"]) == (2, 0.2, 0.5)
    assert (td3.policy_delay, td3.target_policy_noise, td3.target_noise_clip) == (2, 0.2, 0.5)
    assert (td3.tau, td3.learning_rate, td3.buffer_size, td3.learning_starts) == (
        0.005, 1e-3, 1_000_000, 100)
    assert td3.train_freq == (1, "step") and td3.gradient_steps == 1


def test_sb3_arguments_map_onto_numddpg():
    model = TD3("MlpPolicy", "Pendulum-v1", learning_rate=3e-4, buffer_size=5000,
                learning_starts=0, batch_size=32, tau=0.02, gamma=0.98, train_freq=(4, "step"),
                gradient_steps=-1, policy_delay=3, target_policy_noise=0.1,
                target_noise_clip=0.3, seed=7,
                action_noise=OrnsteinUhlenbeckActionNoise(np.zeros(1), np.full(1, 0.5),
                                                          theta=0.2, dt=0.05),
                policy_kwargs=dict(net_arch=dict(pi=[8], qf=[16, 16]), n_critics=2))
    hp = model.native.hyperparameters
    assert (hp["pi_lr"], hp["q_lr"], hp["replay_size"], hp["start_steps"],
            hp["update_after"]) == (3e-4, 3e-4, 5000, 0, 1)
    assert (hp["batch_size"], hp["polyak"], hp["gamma"], hp["update_every"]) == (32, 0.98, 0.98,
                                                                                  4)
    assert hp["gradient_steps"] is None                      # -1: as many as env steps
    assert (hp["policy_delay"], hp["target_noise"], hp["noise_clip"]) == (3, 0.1, 0.3)
    assert (hp["noise"], hp["ou_sigma"], hp["ou_theta"], hp["ou_dt"]) == ("ou", 0.5, 0.2, 0.05)
    assert (hp["hidden_sizes"], hp["qf_hidden_sizes"], hp["seed"]) == ((8,), (16, 16), 7)
    assert model.native.noise_process is model.action_noise     # SB3's object drives the loop


def _docs_rows():
    """(sb3 name, sb3 default, numddpg name, numddpg default) of docs/sb3.md's table rows that
    name one argument and one hyperparameter."""
    path = Path(__file__).resolve().parents[1] / "docs" / "sb3.md"
    one = re.compile(r"^`(\w+)`( \(TD3\))?$")
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and one.match(cells[0]):
            rows.append((one.match(cells[0]).group(1), cells[1],
                         one.match(cells[2]).group(1) if one.match(cells[2]) else None,
                         cells[3]))
    return rows


def test_docs_table_matches_the_code():
    """docs/sb3.md's SB3 defaults are the signatures', its numddpg names and defaults the
    hyperparameter table's, and every hyperparameter with an SB3 name has its row."""
    rows = _docs_rows()
    signature = inspect.signature(TD3).parameters
    checked = 0
    for sb3_name, sb3_default, name, default in rows:
        if sb3_name in signature and sb3_default not in ("(required)",):
            assert ast.literal_eval(sb3_default) == signature[sb3_name].default, sb3_name
            checked += 1
        if name is not None and name in TD3_TABLE:
            assert ast.literal_eval(default) == TD3_TABLE[name].default, name
            checked += 1
    assert checked >= 25
    named = {(r[0], r[2]) for r in rows}
    for name, spec in TD3_TABLE.items():
        if spec.sb3 is not None:
            assert (spec.sb3, name) in named, (spec.sb3, name)


@pytest.mark.parametrize("policy_kwargs, hp", [
    (dict(optimizer_class=AdamW), dict(weight_decay=1e-2, decoupled_weight_decay=True)),
    (dict(optimizer_class=AdamW, optimizer_kwargs=None),
     dict(weight_decay=1e-2, decoupled_weight_decay=True)),
    (dict(optimizer_class=AdamW, optimizer_kwargs=dict(weight_decay=0.0)),
     dict(weight_decay=0.0, decoupled_weight_decay=True)),
    (dict(optimizer_class=Adam, optimizer_kwargs=dict(weight_decay=1e-4, eps=1e-5)),
     dict(weight_decay=1e-4, decoupled_weight_decay=False, adam_eps=1e-5)),
    (dict(optimizer_kwargs=dict(weight_decay=1e-4, decoupled_weight_decay=True,
                                betas=(0.5, 0.99), amsgrad=False, maximize=False)),
     dict(weight_decay=1e-4, decoupled_weight_decay=True, adam_beta1=0.5, adam_beta2=0.99)),
    (dict(), dict(weight_decay=0.0, decoupled_weight_decay=False, adam_beta1=0.9,
                  adam_beta2=0.999, adam_eps=1e-8)),          # SB3's Adam
])
def test_sb3s_optimizers_map_onto_adams_hyperparameters(policy_kwargs, hp, tmp_path):
    """torch.optim.AdamW / Adam (matched by name) and their optimizer_kwargs become weight
    decay, betas and eps; a loaded model's policy_kwargs give the same ones back."""
    model = TD3("MlpPolicy", "Pendulum-v1", buffer_size=500, seed=0,
                policy_kwargs=dict(TINY, **policy_kwargs))
    assert {k: model.native.hyperparameters[k] for k in hp} == hp
    model.save(tmp_path / "m")
    loaded = TD3.load(tmp_path / "m")
    again = TD3("MlpPolicy", "Pendulum-v1", buffer_size=500, seed=0,
                policy_kwargs=loaded.policy_kwargs)
    mine = ("weight_decay", "adam_beta1", "adam_beta2", "adam_eps")
    assert {k: again.native.hyperparameters[k] for k in mine} == {
        k: model.native.hyperparameters[k] for k in mine}
    if model.native.hyperparameters["weight_decay"]:
        assert again.native.decoupled_weight_decay == model.native.decoupled_weight_decay


def test_learning_starts_as_in_sb3():
    """SB3 acts at random while num_timesteps < learning_starts and trains once
    num_timesteps > learning_starts."""
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=10, batch_size=4,
                 policy_kwargs=TINY, seed=0)
    model.learn(10)
    assert model.native.agent.q_optim.t == 0
    model.learn(1, reset_num_timesteps=False)
    assert model.native.agent.q_optim.t == 1
    assert model.native.start_steps == 10


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------

@given(act_dim=st.integers(1, 6), sigma=st.floats(0, 3), theta=st.floats(0, 1),
       dt=st.floats(1e-4, 1), seed=st.integers(0, 2**32 - 1))
def test_noise_draw_for_draw_as_numddpg_processes(act_dim, sigma, theta, dt, seed):
    """Mapped noises give the native processes' draws bit for bit (so that the loop may draw
    from either and a checkpoint restores them), resets included."""
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    ours = NormalActionNoise(np.zeros(act_dim), np.full(act_dim, sigma))
    native = GaussianNoise(act_dim, sigma)
    assert ours.native_hyperparameters() == {"noise": "gaussian", "act_noise": sigma}
    for _ in range(3):
        np.testing.assert_array_equal(ours.sample(a, np.empty(act_dim)),
                                      native.sample(b, np.empty(act_dim)))
    ours = OrnsteinUhlenbeckActionNoise(np.zeros(act_dim), np.full(act_dim, sigma), theta, dt)
    native = OUNoise(act_dim, sigma, theta, dt)
    assert ours.kind == "ou"
    for i in range(8):
        if i == 5:
            ours.reset(), native.reset()
        np.testing.assert_array_equal(ours.sample(a, np.empty(act_dim)),
                                      native.sample(b, np.empty(act_dim)))
    np.testing.assert_array_equal(ours.noise_prev, native.x)


def test_noise_called_as_in_sb3():
    np.random.seed(0)
    n = NormalActionNoise(mean=np.ones(2), sigma=np.zeros(2))
    assert n().dtype == np.float32 and n().tolist() == [1.0, 1.0]
    ou = OrnsteinUhlenbeckActionNoise(np.full(2, 1.0), np.zeros(2), theta=0.5, dt=1.0,
                                      initial_noise=np.zeros(2))
    assert ou().tolist() == [0.5, 0.5] and ou().tolist() == [0.75, 0.75]   # x + theta(mu-x)dt
    ou.reset()
    assert ou.noise_prev.tolist() == [0.0, 0.0]
    assert n.native_hyperparameters() is None and ou.native_hyperparameters() is None


@pytest.mark.parametrize("make, match", [
    (lambda: NormalActionNoise(np.zeros(1), np.ones(1), dtype=int), "dtype"),
    (lambda: NormalActionNoise(np.zeros(1), -np.ones(1)), "sigma"),
    (lambda: NormalActionNoise("0", np.ones(1)), "mean"),
    (lambda: NormalActionNoise(np.zeros(2), np.ones(3)), "same shape"),
    (lambda: OrnsteinUhlenbeckActionNoise(np.zeros(1), np.ones(1), theta=-1), "theta"),
    (lambda: OrnsteinUhlenbeckActionNoise(np.zeros(1), np.ones(1), dt=math.nan), "dt"),
    (lambda: OrnsteinUhlenbeckActionNoise(np.zeros(1), np.ones(1), initial_noise=np.ones(2)),
     "initial_noise"),
])
def test_noise_arguments_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unmapped_noise_trains_and_warns_on_save(tmp_path):
    noise = NormalActionNoise(mean=np.full(1, 0.05), sigma=np.full(1, 0.1))
    model = DDPG("MlpPolicy", "Pendulum-v1", action_noise=noise, learning_starts=5,
                 batch_size=4, policy_kwargs=TINY, seed=0)
    assert model.native.hyperparameters["noise"] == "none"
    model.learn(20)
    with pytest.warns(UserWarning, match="action_noise"):
        model.save(tmp_path / "m")
    loaded = DDPG.load(tmp_path / "m", action_noise=noise)
    assert loaded.action_noise is noise
    assert DDPG.load(tmp_path / "m").action_noise is None


# ---------------------------------------------------------------------------------------------
# Envs, evaluation, files
# ---------------------------------------------------------------------------------------------

def test_vector_env_trains_and_evaluates():
    vec_env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = TD3("MlpPolicy", vec_env, learning_starts=50, batch_size=16, policy_kwargs=TINY,
                seed=0, action_noise=NormalActionNoise(np.zeros(1), np.full(1, 0.1)))
    model.learn(600)
    assert model.n_envs == 2 and model.get_env() is vec_env
    assert model.observation_space.shape == (3,) and model.action_space.shape == (1,)
    assert model._episode_num == 2 and [e["l"] for e in model.ep_info_buffer] == [200, 200]
    returns, lengths = evaluate_policy(model, make_vec_env("Pendulum-v1", n_envs=3, seed=1),
                                       n_eval_episodes=4, return_episode_rewards=True)
    assert len(returns) == 4 and lengths == [200] * 4
    with pytest.raises(AssertionError, match="below threshold"):
        evaluate_policy(model, gym.make("Pendulum-v1"), n_eval_episodes=1, reward_threshold=1e9)


def test_saved_model_continues_as_the_original(tmp_path):
    """Saved at an episode boundary, a loaded model trains on bit-identically (SB3's OU noise
    as numddpg's, its state and the loop's generator restored)."""
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(1), np.full(1, 0.3))
    model = TD3("MlpPolicy", "Pendulum-v1", action_noise=noise, learning_starts=50,
                batch_size=16, train_freq=(2, "step"), policy_kwargs=TINY, seed=3)
    model.learn(400)                               # two whole 200-step episodes
    model.save(tmp_path / "td3")
    loaded = TD3.load(tmp_path / "td3")
    assert loaded.num_timesteps == 400 and loaded.train_freq == (2, "step")
    assert isinstance(loaded.action_noise, OrnsteinUhlenbeckActionNoise)
    model.learn(150)
    loaded.learn(150)
    np.testing.assert_array_equal(loaded.native.agent.actor.params,
                                  model.native.agent.actor.params)
    np.testing.assert_array_equal(loaded.action_noise.x, model.action_noise.x)


def test_callback_locals_on_a_vector_env():
    rec = Recorder()
    model = DDPG("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), learning_starts=4,
                 batch_size=4, train_freq=2, gradient_steps=3, policy_kwargs=TINY, seed=0)
    assert model.native.update_every == 4 and model.train_freq == (2, "step")
    model.learn(20, callback=rec)
    assert rec.n_calls == 10 and [s[6] for s in rec.seen] == list(range(2, 21, 2))
    # as SB3: a round every 2 steps of the vector env once num_timesteps > 4 (8, 12, 16, 20)
    assert rec.events.count("rollout_end") == 4 and model.native.agent.q_optim.t == 12
    assert {s[1:6] for s in rec.seen} == {((2, 3), (2, 1), (2,), (2,), 2)}
    assert isinstance(rec.locals["infos"][0], dict)


def test_vector_envs_from_functions():
    make = lambda: gym.make("Pendulum-v1")                               # noqa: E731
    model = TD3("MlpPolicy", make_vec_env(make, n_envs=2, seed=1), policy_kwargs=TINY,
                buffer_size=1000, learning_starts=10, batch_size=8, seed=0)
    model.learn(40)
    assert model.num_timesteps == 40
    async_env = make_vec_env(make, n_envs=2, vec_env_cls=gym.vector.AsyncVectorEnv)
    try:
        with pytest.raises(ValueError, match="from functions"):
            TD3("MlpPolicy", async_env, policy_kwargs=TINY, buffer_size=1000)
    finally:
        async_env.close()


def test_replay_buffer_round_trip(tmp_path):
    model = DDPG("MlpPolicy", "Pendulum-v1", buffer_size=1000, learning_starts=5, batch_size=4,
                 policy_kwargs=TINY, seed=0)
    model.learn(30)
    model.save_replay_buffer(tmp_path / "rb")
    other = DDPG("MlpPolicy", "Pendulum-v1", buffer_size=1000, policy_kwargs=TINY, seed=1)
    other.load_replay_buffer(tmp_path / "rb")
    assert other.replay_buffer.size == 30
    np.testing.assert_array_equal(other.replay_buffer.obs[:30], model.replay_buffer.obs[:30])
    wrong = DDPG("MlpPolicy", "Pendulum-v1", buffer_size=999, policy_kwargs=TINY, seed=1)
    with pytest.raises(CheckpointError, match="buffer_size"):
        wrong.load_replay_buffer(tmp_path / "rb")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError):
        other.load_replay_buffer(tmp_path / "junk.npz")


def test_set_env_checks_spaces():
    model = DDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    model.set_env(gym.make("Pendulum-v1"))
    model.learn(3)
    with pytest.raises(EnvError, match="set_env"):
        model.set_env(gym.make("MountainCarContinuous-v0"))
    with pytest.raises(ValueError, match="set_env"):
        model.set_env(make_vec_env("Pendulum-v1", n_envs=2))


# ---------------------------------------------------------------------------------------------
# What numddpg cannot do is an error naming the argument
# ---------------------------------------------------------------------------------------------

class Tanh:
    """Stands for torch.nn.Tanh (matched by name: numddpg never imports torch)."""


@pytest.mark.parametrize("kwargs, match", [
    (dict(policy="CnnPolicy"), "policy"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(device="mps"), "device"),
    (dict(train_freq=(1, "episode")), "train_freq"),
    (dict(train_freq=(1, "month")), "train_freq"),
    (dict(train_freq=0), "train_freq"),
    (dict(gradient_steps=-2), "gradient_steps"),
    (dict(n_steps=0), "n_steps"),
    (dict(replay_buffer_class=object), "replay_buffer_class"),
    (dict(optimize_memory_usage=True), "optimize_memory_usage"),
    (dict(policy_kwargs=dict(activation_fn=Tanh)), "activation_fn"),
    (dict(policy_kwargs=dict(n_critics=0)), "n_critics"),
    (dict(policy_kwargs=dict(net_arch=[0])), "net_arch"),
    (dict(policy_kwargs=dict(net_arch=dict(pi=[8]))), "net_arch"),
    (dict(policy_kwargs=dict(use_sde=True)), "use_sde"),
    (dict(policy_kwargs=dict(optimizer_class=RMSprop)), "optimizer_class"),
    (dict(policy_kwargs=dict(optimizer_kwargs=dict(amsgrad=True))), "amsgrad"),
    (dict(policy_kwargs=dict(optimizer_kwargs=dict(lr=1e-3))), r"\['lr'\]"),
    (dict(policy_kwargs=dict(optimizer_kwargs=dict(betas=(0.9,)))), "betas"),
    (dict(policy_kwargs=dict(optimizer_kwargs=dict(betas=(0.9, 1.0)))), r"\['betas'\]\[1\]"),
    (dict(policy_kwargs=dict(optimizer_kwargs=dict(eps=0.0))), r"\['eps'\]"),
    (dict(policy_kwargs=dict(optimizer_kwargs=dict(weight_decay=-1.0))), "weight_decay"),
    (dict(policy_kwargs=dict(optimizer_class=AdamW,
                             optimizer_kwargs=dict(decoupled_weight_decay=False))),
     "decoupled_weight_decay"),
    (dict(policy_kwargs=dict(optimizer_kwargs=[("eps", 1e-5)])), "optimizer_kwargs"),
    (dict(tau=1.5), "tau"),
    (dict(buffer_size=0), "buffer_size"),
    (dict(gamma=True), "gamma"),
    (dict(seed=-1), "seed"),
    (dict(verbose=-1), "verbose"),
    (dict(action_noise="gaussian"), "action_noise"),
    (dict(batch_size=1.5), "batch_size"),
    (dict(action_noise=NormalActionNoise(np.zeros(2), np.ones(2))), "action_noise"),
    (dict(_init_setup_model=False), "_init_setup_model"),
    (dict(env=None), "env"),
    (dict(env=gym.make("CartPole-v1")), "Discrete"),
])
def test_unsupported_arguments_raise_naming_them(kwargs, match):
    args = dict(policy="MlpPolicy", env="Pendulum-v1", policy_kwargs=TINY, buffer_size=1000)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        DDPG(**args)


def test_an_action_space_sb3_refuses_raises_its_assertion_error_with_numddpgs_reason():
    for Algo in (DDPG, TD3):                       # SB3 asserts its supported action spaces
        with pytest.raises(AssertionError, match="continuous Box action space") as info:
            Algo("MlpPolicy", "CartPole-v1", policy_kwargs=TINY, buffer_size=1000)
        assert isinstance(info.value, EnvError)        # numddpg's own kind too


@pytest.mark.parametrize("kwargs, match", [
    (dict(policy_delay=0), "policy_delay"),
    (dict(target_policy_noise=-0.1), "target_policy_noise"),
    (dict(target_noise_clip=float("inf")), "target_noise_clip"),
    (dict(policy_kwargs=dict(n_critics=11)), "n_critics"),
    (dict(stats_window_size=0), "stats_window"),
    (dict(tensorboard_log=3), "tensorboard_log"),
])
def test_td3_arguments_are_checked(kwargs, match):
    args = dict(policy="MlpPolicy", env="Pendulum-v1", policy_kwargs=TINY, buffer_size=1000)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        TD3(**args)


def test_tensorboard_log_and_tb_log_name(tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra (numddpg[tensorboard])")
    model = TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, buffer_size=1000,
                learning_starts=10, batch_size=8, tensorboard_log=str(tmp_path), seed=0)
    model.learn(200, tb_log_name="run")
    model.learn(10)                                        # SB3's default name: the class's
    assert sorted(os.listdir(tmp_path)) == ["TD3_1", "run_1"]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "run_1"))
    with pytest.raises(ValueError, match="tb_log_name"):
        model.learn(10, tb_log_name="a/b")


def test_dict_observations_are_refused():
    env = gym.wrappers.TransformObservation(
        gym.make("Pendulum-v1"), lambda o: {"x": o},
        gym.spaces.Dict({"x": gym.make("Pendulum-v1").observation_space}))
    with pytest.raises(EnvError, match="Dict"):
        DDPG("MlpPolicy", env, policy_kwargs=TINY, buffer_size=1000)


def test_load_and_save_arguments_are_checked(tmp_path):
    model = DDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, buffer_size=1000, seed=0)
    model.save(tmp_path / "m.npz")
    for kwargs, match in [(dict(custom_objects={"learning_rate": -1.0}), "learning_rate"),
                          (dict(device="mps"), "device"), (dict(gamma=1.5), "gamma"),
                          (dict(policy_kwargs=dict(net_arch=[4])), "policy_kwargs"),
                          (dict(frobnicate=1), "frobnicate"), (dict(n_steps=0), "n_steps")]:
        with pytest.raises(ValueError, match=match):
            DDPG.load(tmp_path / "m.npz", **kwargs)
    with pytest.raises(CheckpointError, match="'ddpg' checkpoint"):
        TD3.load(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="hyperparameter"):
        model.save(tmp_path / "n", exclude=["learning_rate"])
    with pytest.raises(ValueError, match="not an attribute"):
        model.save(tmp_path / "n", exclude=["verbosity"])
    model.my_env = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match="plain data"):
        model.save(tmp_path / "n", include=["my_env"])
    with pytest.raises(ValueError, match="you set"):
        model.save(tmp_path / "n", include=["native"])
    with pytest.raises(TypeError, match="path"):
        model.save(open(tmp_path / "f", "wb"))
    with pytest.raises(ValueError, match="total_timesteps"):
        model.learn(0)
    with pytest.raises(ValueError, match="Dict"):
        model.predict({"x": np.zeros(3)})
    with pytest.raises(ValueError, match=r"\(obs, info\)"):
        model.predict(gym.make("Pendulum-v1").reset())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert DDPG.load(tmp_path / "m").verbose == 0     # "m.npz" found (earlier files' name)


def test_callback_records_and_log_interval_reach_tensorboard(tmp_path):
    pytest.importorskip("tensorboardX", reason="the numddpg[tensorboard] extra")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from numddpg.sb3 import DDPG, BaseCallback

    class Records(BaseCallback):
        def _on_step(self):
            if self.n_calls % 100 == 0:
                self.logger.record("custom/calls", self.n_calls)
                self.logger.record("custom/hidden", 1.0, exclude="tensorboard")
                self.logger.dump(self.num_timesteps)
            return True

    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=100, batch_size=16,
                 policy_kwargs=dict(net_arch=[8]), tensorboard_log=str(tmp_path / "tb"), seed=0)
    model.learn(400, callback=Records(), log_interval=1)
    acc = accumulator.EventAccumulator(str(next((tmp_path / "tb").iterdir())))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "custom/calls" in tags and "custom/hidden" not in tags
    assert [e.step for e in acc.Scalars("custom/calls")] == [100, 200, 300, 400]
    assert len(acc.Scalars("rollout/ep_rew_mean")) >= 2      # every episode (log_interval=1)
