"""A run records the env it trained on (gymnasium.make's kwargs, the episode limit, the
wrappers applied after make), and eval, load and resume rebuild exactly that env or refuse:
never silently another one."""
import json

import gymnasium as gym
import pytest
from gymnasium.wrappers import ClipReward, RescaleAction

from numddpg.tools import cli
from numddpg.training.algorithms import DDPG, OffPolicyAlgorithm
from numddpg.files.checkpoint import CheckpointError
from numddpg.training.envs import EnvError, env_record, make_from_record

TINY = dict(hidden_sizes=(8,), start_steps=100, update_after=100, steps_per_epoch=200,
            num_test_episodes=1, chunks=1, seed=0)


def wrapped():
    return RescaleAction(gym.make("Pendulum-v1", g=2.0, max_episode_steps=150), -1.0, 1.0)


def test_the_record_holds_kwargs_limit_and_wrappers_and_rebuilds_the_same_env():
    record = env_record(wrapped())
    assert record == {"id": "Pendulum-v1", "kwargs": {"g": 2.0}, "max_episode_steps": 150,
                      "wrappers": [{"name": "RescaleAction",
                                    "kwargs": {"min_action": -1.0, "max_action": 1.0}}],
                      "why": None}
    again = make_from_record(json.loads(json.dumps(record)))
    assert env_record(again) == record and again.unwrapped.g == 2.0


def test_eval_resume_and_load_use_the_env_trained_on(tmp_path, capsys):
    model = DDPG(wrapped(), run_dir=tmp_path / "run", **TINY).learn(400, progress_bar=False)
    mean, _ = model.evaluate(3, seed=4)
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "3", "--seed", "4"]) == 0
    assert f"return {mean:.1f}" in capsys.readouterr().out          # the same env, same seeds
    loaded = OffPolicyAlgorithm.load(tmp_path / "run" / "checkpoint.npz")
    assert loaded.env_record == model.env_record and loaded.evaluate(3, seed=4)[0] == mean
    resumed = OffPolicyAlgorithm.resume(tmp_path / "run", total_steps=600, progress_bar=False)
    assert resumed.env.unwrapped.g == 2.0 and resumed.env_record == model.env_record


def test_an_env_that_cannot_be_rebuilt_is_refused_not_replaced(tmp_path, capsys):
    class Mine(gym.Wrapper):
        pass

    model = DDPG(Mine(gym.make("Pendulum-v1")), test_env=gym.make("Pendulum-v1"),
                 run_dir=tmp_path / "run", **TINY).learn(200, progress_bar=False)
    assert "wrapper Mine" in model.env_record["why"]
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1"]) == 2
    assert "cannot be rebuilt from its record" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1", "--env",
                     "Pendulum-v1"]) == 0                        # the user's choice: allowed
    with pytest.raises(CheckpointError, match="cannot be rebuilt"):
        OffPolicyAlgorithm.load(tmp_path / "run" / "checkpoint.npz")
    assert OffPolicyAlgorithm.load(tmp_path / "run" / "checkpoint.npz",
                                   env=Mine(gym.make("Pendulum-v1"))).t == 200


@pytest.mark.parametrize("edit", [
    {"wrappers": [{"name": "RecordVideo", "kwargs": {"video_folder": "/tmp/x"}}]},
    {"wrappers": [{"name": "RescaleAction", "kwargs": {"evil": 1}}]},
    {"kwargs": {"not_an_argument": 1}}, {"max_episode_steps": 10**12}, {"id": "os:Pendulum-v1"},
    {"why": None, "extra": 1}, {"wrappers": "RescaleAction"},
    {"kwargs": {"xml_file": "/etc/passwd"}},
])
def test_doctored_records_are_refused(edit):
    record = dict(env_record(wrapped()), **edit)
    with pytest.raises(EnvError):
        make_from_record(record)


def test_an_env_made_with_a_file_argument_is_recorded_as_not_rebuildable():
    """MuJoCo's xml_file and the like: a record never makes numddpg read a file it names."""
    import dataclasses
    from types import SimpleNamespace
    spec = dataclasses.replace(gym.spec("Pendulum-v1"), kwargs={"xml_file": "model.xml"})
    record = env_record(SimpleNamespace(spec=spec))
    assert "xml_file" in record["why"] and record["kwargs"] == {}


def test_clip_reward_and_vector_records():
    assert env_record(ClipReward(gym.make("Pendulum-v1"), -1.0, 1.0))["why"] is None
    vec = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    record = env_record(vec)
    assert record["id"] == "Pendulum-v1" and record["why"] is None and record["kwargs"] == {}
    rebuilt = make_from_record(record, vector={"num_envs": 2, "mode": "sync"})
    assert rebuilt.num_envs == 2
