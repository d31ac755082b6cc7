"""Dict observations and hindsight experience replay in training: a goal env's Dict observation
is flattened at the env boundary in sorted key order (training, test episodes, evaluate,
predict, the policy file, checkpoints); with ``her`` the hindsight buffer replaces the replay
buffer, its minibatches gathered outside the jitted burst, and a run resumed from a
checkpoint equals the uninterrupted run bit for bit; test episodes' ``is_success`` is logged.
"""
import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import numddpg
from numddpg.files.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from numddpg.files.policy import policy_array_specs
from numddpg.training.envs import EnvError, EnvFailure
from numddpg.training.runstate import read_run_checkpoint

HORIZON = 10


class PointReachEnv(gym.Env):
    """A point in the plane moved by 0.1 a toward a goal (a in [-1, 1]^2): gymnasium-robotics'
    goal-env interface in miniature.  Dict observation {observation (3,), achieved_goal (2,),
    desired_goal (2,)}; reward compute_reward(achieved, desired) = 0 within 0.1 of the goal,
    else -1; info["is_success"]; never terminates (the TimeLimit truncates)."""

    def __init__(self, eps=0.1):
        goal = spaces.Box(-5.0, 5.0, (2,), np.float64)
        self.observation_space = spaces.Dict({
            "observation": spaces.Box(-np.inf, np.inf, (3,), np.float64),
            "achieved_goal": goal, "desired_goal": goal})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.eps = eps

    def compute_reward(self, achieved_goal, desired_goal, info):
        d = np.linalg.norm(np.asarray(achieved_goal) - desired_goal, axis=-1)
        return -(d > self.eps).astype(np.float64)

    def _obs(self):
        return {"observation": np.append(self.pos, self.t / HORIZON),
                "achieved_goal": self.pos.copy(), "desired_goal": self.goal.copy()}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.5, 0.5, 2)
        self.goal = self.np_random.uniform(-0.5, 0.5, 2)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = self.pos + 0.1 * np.clip(action, -1, 1)
        self.t += 1
        rew = float(self.compute_reward(self.pos, self.goal, {}))
        return self._obs(), rew, False, False, {"is_success": float(rew == 0.0)}


gym.register("NumddpgPointReach-v0", entry_point=f"{__name__}:PointReachEnv",
             max_episode_steps=HORIZON)
ENV = "NumddpgPointReach-v0"
TINY = dict(hidden_sizes=(16, 16), batch_size=32, start_steps=50, update_after=50,
            update_every=10, steps_per_epoch=100, num_test_episodes=2, replay_size=1000,
            chunks=1, blas_threads=1, seed=0)


def test_a_dict_observation_trains_and_acts_on_its_flat_vector(tmp_path):
    model = numddpg.DDPG(ENV, run_dir=tmp_path / "run", **TINY)
    assert model.obs_dim == 7 and model.obs_layout.keys == ("achieved_goal", "desired_goal",
                                                            "observation")
    model.learn(200, progress_bar=False)
    obs, _ = gym.make(ENV).reset(seed=1)
    flat = np.concatenate([obs["achieved_goal"], obs["desired_goal"], obs["observation"]])
    action, _ = model.predict(obs)
    np.testing.assert_array_equal(action, model.predict(flat)[0])
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    np.testing.assert_array_equal(model.predict(batch)[0], [action, action])
    policy = numddpg.load_policy(model.run_dir)          # NumPy alone: its products round
    np.testing.assert_allclose(policy(obs), action, rtol=1e-5, atol=1e-6)   # as NumPy's do
    np.testing.assert_array_equal(policy(obs), policy(flat))
    config = json.loads((model.run_dir / "config.json").read_text())
    assert config["obs_layout"] == {"keys": ["achieved_goal", "desired_goal", "observation"],
                                    "shapes": [[2], [2], [3]]}
    loaded = numddpg.DDPG.load(model.run_dir / "checkpoint.npz")
    assert loaded.obs_layout == model.obs_layout
    np.testing.assert_array_equal(loaded.predict(obs)[0], action)
    mean, _ = model.evaluate(2)
    assert np.isfinite(mean)


@pytest.mark.parametrize("obs, words", [
    ({"observation": np.zeros(3), "achieved_goal": np.zeros(2)}, "'desired_goal'"),
    ({"observation": np.zeros(3), "achieved_goal": np.zeros(2), "desired_goal": np.zeros(2),
      "extra": np.zeros(1)}, "'extra'"),
    ({"observation": np.zeros(4), "achieved_goal": np.zeros(2), "desired_goal": np.zeros(2)},
     "'observation'"),
])
def test_a_dict_that_does_not_fit_is_named_in_one_line(tmp_path, obs, words):
    model = numddpg.DDPG(ENV, log=False, **TINY)
    with pytest.raises(ValueError, match=words) as info:
        model.predict(obs)
    assert "\n" not in str(info.value)
    policy_path = model.save_policy(tmp_path / "p.npz")
    with pytest.raises(ValueError, match=words):
        numddpg.load_policy(policy_path)(obs)


def test_an_env_whose_step_breaks_its_dict_is_named(tmp_path):
    class Broken(PointReachEnv):
        def step(self, action):
            obs, *rest = super().step(action)
            del obs["desired_goal"]
            return (obs, *rest)
    env = gym.wrappers.TimeLimit(Broken(), HORIZON)
    model = numddpg.DDPG(env, log=False, test_env=PointReachEnv(), **TINY)
    with pytest.raises(EnvFailure, match="'desired_goal'"):
        model.learn(5, progress_bar=False)


def test_a_dict_of_non_boxes_is_refused_naming_the_entry():
    env = PointReachEnv()
    env.observation_space = spaces.Dict({"observation": spaces.Discrete(3),
                                         "goal": spaces.Box(-1, 1, (2,))})
    with pytest.raises(EnvError, match="'observation'"):
        numddpg.DDPG(env, log=False, **TINY)


def test_a_policy_files_layout_is_checked_when_read(tmp_path):
    model = numddpg.DDPG(ENV, log=False, **TINY)
    path = model.save_policy(tmp_path / "p.npz")
    meta, arrays = read_checkpoint(path, "policy", policy_array_specs)
    for bad in ({"keys": ["a"], "shapes": [[3]]}, {"keys": ["b", "a"], "shapes": [[4], [3]]},
                {"keys": "abc", "shapes": []}, [1, 2]):
        meta2 = {k: v for k, v in meta.items() if k not in ("arrays", "kind")}
        meta2["obs_layout"] = bad
        other = tmp_path / "bad.npz"
        write_checkpoint(other, {k: arrays[k] for k in ("params", "mid", "half", "low", "high")},
                         dict(meta2, kind="policy"))
        with pytest.raises(CheckpointError, match="obs_layout") as info:
            numddpg.load_policy(other)
        assert "\n" not in str(info.value)


def test_a_vector_env_of_dict_observations_trains():
    vec = gym.make_vec(ENV, num_envs=2, vectorization_mode="sync")
    model = numddpg.DDPG(vec, log=False, **TINY)
    model.learn(120, progress_bar=False)
    assert model.t == 120 and model.buffer.size > 0


# ---------------------------------------------------------------------------------------------
# Hindsight experience replay in the loop
# ---------------------------------------------------------------------------------------------

HER = dict(TINY, her="future", her_k=4, checkpoint_every=50)


def test_her_needs_a_goal_env():
    with pytest.raises(EnvError, match="needs a goal env.*observes a Box"):
        numddpg.DDPG("Pendulum-v1", log=False, her="future")

    class NoReward(PointReachEnv):
        compute_reward = None
    with pytest.raises(EnvError, match="compute_reward"):
        numddpg.DDPG(gym.wrappers.TimeLimit(NoReward(), HORIZON), log=False,
                     test_env=PointReachEnv(), her="final")
    with pytest.raises(ValueError, match="her must be one of"):
        numddpg.DDPG(ENV, log=False, her="later")
    with pytest.raises(ValueError, match="her_k"):
        numddpg.DDPG(ENV, log=False, her="future", her_k=0)


def test_her_trains_on_relabelled_minibatches_and_logs_success(tmp_path):
    model = numddpg.DDPG(ENV, run_dir=tmp_path / "run", **HER)
    model.learn(300, progress_bar=False)
    assert type(model.buffer).__name__ == "HerReplayBuffer"
    assert model.buffer.n_sampled_goal == 4 and model.buffer.goal_selection_strategy == "future"
    assert model.agent.t_q == 26 * 10      # rounds at t = 50, 60, ..., 300 of update_every
    with open(model.run_dir / "progress.csv") as f:
        header, *rows = f.read().splitlines()
    assert header.endswith(",TestSuccessRate") and len(rows) == 3
    assert all(0.0 <= float(r.split(",")[-1]) <= 1.0 for r in rows)


class Kill:
    """An SB3-protocol callback that stops the process (an exception) at env step ``t``."""

    def __init__(self, t):
        self.t = t

    def on_training_start(self, *args):
        pass

    def update_locals(self, locals_):
        self.model = locals_["self"]

    def on_step(self):
        if self.model.t >= self.t:
            raise KeyboardInterrupt("killed")
        return True

    on_rollout_start = on_rollout_end = on_training_end = on_training_start


@pytest.mark.parametrize("cls", [numddpg.DDPG, numddpg.TD3])
def test_a_her_run_killed_and_resumed_equals_the_uninterrupted_run(tmp_path, cls):
    whole = cls(ENV, run_dir=tmp_path / "whole", normalize_obs=True, **HER)
    whole.learn(400, progress_bar=False)
    cut = cls(ENV, run_dir=tmp_path / "cut", normalize_obs=True, **HER)
    with pytest.raises(KeyboardInterrupt):
        cut.learn(400, progress_bar=False, callback=Kill(235))   # last checkpoint: step 200
    resumed = cls.resume(tmp_path / "cut", total_steps=400, progress_bar=False)
    a, b = whole.agent.state_dict(), resumed.agent.state_dict()
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    (wa, _), (wb, _) = whole.buffer.state(), resumed.buffer.state()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    for run in ("whole", "cut"):
        assert (tmp_path / run / "progress.csv").read_text().count("\n") == 5
    drop = lambda text: [line.split(",")[:-3] + line.split(",")[-1:]     # noqa: E731
                         for line in text.splitlines()]                # (SPS, Time: clocks)
    assert drop((tmp_path / "whole" / "progress.csv").read_text()) == \
        drop((tmp_path / "cut" / "progress.csv").read_text())


def test_her_on_a_vector_env_keeps_each_envs_episodes_whole():
    vec = gym.make_vec(ENV, num_envs=2, vectorization_mode="sync")   # NEXT_STEP autoreset
    model = numddpg.DDPG(vec, log=False, **dict(HER, checkpoint_every=None))
    model.learn(200, progress_bar=False)
    ep = model.buffer.episodes
    lengths = ep.ep_len[ep.ep_len > 0]
    assert lengths.size and np.all(lengths == HORIZON)      # no reset step inside an episode
    assert model.agent.t_q > 0


def test_a_damaged_her_record_is_refused_in_one_line(tmp_path):
    model = numddpg.DDPG(ENV, log=False, **HER)
    model.learn(60, progress_bar=False)
    path = model.save(tmp_path / "m.npz")
    meta, arrays = read_run_checkpoint(path)
    for change in ({"n_envs": -1}, {"size": "3"}, {"goal_selection_strategy": "later"},
                   {"obs_dim": 3}):
        meta2 = dict(meta, buffer=dict(meta["buffer"], **change))
        meta2 = {k: v for k, v in meta2.items() if k not in ("arrays", "kind")}
        other = tmp_path / "bad.npz"
        write_checkpoint(other, arrays, dict(meta2, kind="algorithm"),
                         allow_nonfinite=("epoch.update_stats",))
        with pytest.raises(CheckpointError) as info:
            numddpg.DDPG.load(other)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("source", ["policy.npz", "checkpoint.npz"])
def test_an_exported_policy_keeps_the_dict_layout(tmp_path, source):
    from numddpg.training.runfile import export_policy
    model = numddpg.DDPG(ENV, run_dir=tmp_path / "run", **TINY)
    model.learn(60, progress_bar=False)
    path, _ = export_policy(model.run_dir / source, tmp_path / "exported.npz")
    policy = numddpg.load_policy(path)
    assert policy.layout == model.obs_layout
    obs, _ = gym.make(ENV).reset(seed=2)
    np.testing.assert_array_equal(policy(obs), numddpg.load_policy(model.run_dir)(obs))


def test_numddpg_eval_prints_the_success_rate(tmp_path, capsys):
    from numddpg.tools import cli
    model = numddpg.DDPG(ENV, run_dir=tmp_path / "run", **TINY)
    model.learn(60, progress_bar=False)
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "over 4 episodes" in out and "success rate" in out and "of 4 episodes" in out


def test_config_jsons_layout_is_checked_when_a_run_resumes(tmp_path):
    model = numddpg.DDPG(ENV, run_dir=tmp_path / "run", **TINY)
    model.learn(30, progress_bar=False)
    path = model.run_dir / "config.json"
    config = json.loads(path.read_text())
    for bad, words in (({"keys": ["x"], "shapes": [[-1]]}, "obs_layout"),
                       ({"keys": ["achieved_goal", "desired_goal", "observation"],
                         "shapes": [[3], [2], [2]]}, "obs_layout")):
        path.write_text(json.dumps(dict(config, obs_layout=bad)))
        with pytest.raises(CheckpointError, match=words) as info:
            numddpg.DDPG.resume(model.run_dir, total_steps=60, progress_bar=False)
        assert "\n" not in str(info.value)
