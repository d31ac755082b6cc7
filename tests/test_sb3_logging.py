"""numddpg.sb3's callbacks from any object with SB3's protocol, and its logger: SB3's keys at
SB3's moments, its stdout table, ``set_logger``, TensorBoard folders.

Cases with stable_baselines3's own callbacks and ``configure`` skip when it is not installed.
"""
import os

import numpy as np
import pytest

from numddpg.sb3 import DDPG, TD3, make_vec_env
from numddpg.sb3.callbacks import is_callback
from numddpg.sb3.logger import configure_logger, table

TINY = dict(net_arch=[8])


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


class Plain:
    """SB3's callback protocol by hand, no base class: records the calls."""

    def __init__(self):
        self.calls = []

    def init_callback(self, model):
        self.calls.append(("init", model))

    def on_training_start(self, locals_, globals_):
        self.calls.append(("start", locals_["total_timesteps"]))

    def on_rollout_start(self):
        self.calls.append("rollout_start")

    def update_locals(self, locals_):
        self.last = locals_

    def on_step(self):
        self.calls.append("step")
        return True

    def on_rollout_end(self):
        self.calls.append("rollout_end")

    def on_training_end(self):
        self.calls.append("end")


class Recorder:
    """A logger by hand (SB3's record/dump): keeps every dump."""

    def __init__(self):
        self.values, self.dumps = {}, []

    def record(self, key, value, exclude=None):
        self.values[key] = value

    def dump(self, step=0):
        self.dumps.append((step, dict(self.values)))
        self.values.clear()


def test_any_object_with_the_protocol_is_a_callback():
    cb = Plain()
    assert is_callback(cb) and not is_callback(object())
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=5, batch_size=4, buffer_size=100,
                 policy_kwargs=TINY, seed=0)
    model.learn(10, callback=[cb, Plain()])
    assert cb.calls[0] == ("init", model) and cb.calls[1] == ("start", 10)
    assert cb.calls.count("step") == 10 and cb.calls[-1] == "end"
    assert cb.last["self"] is model and cb.last["new_obs"].shape == (1, 3)
    with pytest.raises(TypeError, match="callback"):
        model.learn(5, callback=object())


def test_train_and_rollout_keys_at_sb3s_moments():
    logger = Recorder()
    model = TD3("MlpPolicy", "Pendulum-v1", learning_starts=100, batch_size=8, buffer_size=1000,
                train_freq=5, gradient_steps=3, policy_kwargs=TINY, seed=0)
    model.set_logger(logger)
    model.learn(400, log_interval=1)                # two 200-step episodes: two dumps
    assert [step for step, _ in logger.dumps] == [200, 400]
    first = logger.dumps[0][1]
    assert first["time/episodes"] == 1 and first["time/total_timesteps"] == 200
    assert first["rollout/ep_len_mean"] == 200 and first["rollout/ep_rew_mean"] < 0
    # as SB3: the episode's last step dumps before its round trains, so the first dump has the
    # rounds after steps 105, 110, ..., 195 (19 rounds of 3 updates), the last one's means
    assert first["train/n_updates"] == 57 and first["train/learning_rate"] == 1e-3
    assert np.isfinite(first["train/critic_loss"]) and np.isfinite(first["train/actor_loss"])
    assert logger.dumps[1][1]["train/n_updates"] == 177 and model.n_updates == 180


def test_learn_ends_after_a_whole_rollout_and_its_recorded_round():
    env = make_vec_env("Pendulum-v1", n_envs=2)
    model = DDPG("MlpPolicy", env, learning_starts=0, batch_size=8, buffer_size=100,
                 train_freq=3, gradient_steps=-1, policy_kwargs=TINY, seed=0)
    model.learn(3)          # SB3: one rollout of 3 steps of 2 envs, then 6 gradient steps
    assert model.num_timesteps == 6
    assert model.logger.name_to_value["train/n_updates"] == 6 == model.n_updates


def test_the_stdout_table_is_sb3s(capsys):
    text = table({"rollout/ep_rew_mean": -1234.5678, "time/episodes": 4,
                  "train/learning_rate": 0.001}, {"time/episodes": None})
    assert text.splitlines() == [
        "--------------------------------",
        "| rollout/         |           |",
        "|    ep_rew_mean   | -1.23e+03 |",
        "| time/            |           |",
        "|    episodes      | 4         |",
        "| train/           |           |",
        "|    learning_rate | 0.001     |",
        "--------------------------------"]
    assert table({"a/b": 1}, {"a/b": ("stdout",)}) is None
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=8, buffer_size=1000,
                 policy_kwargs=TINY, seed=0, verbose=1)
    model.learn(200, log_interval=1)
    out = capsys.readouterr().out
    assert "Using cpu device" in out
    assert "|    ep_rew_mean     |" in out and "|    critic_loss     |" in out


def test_tensorboard_folders_as_sb3_numbers_them(tmp_path):
    from numddpg.files.runlog import MissingExtra
    from numddpg.sb3.logger import summary_writer_class
    try:
        summary_writer_class()
    except MissingExtra:
        pytest.skip("needs tensorboardX (the numddpg[tensorboard] extra) or PyTorch")
    configure_logger(0, str(tmp_path), "TD3", True).close()
    assert os.listdir(tmp_path) == ["TD3_1"]
    configure_logger(0, str(tmp_path), "TD3", True).close()
    configure_logger(0, str(tmp_path), "TD3", False).close()      # the last one again
    assert sorted(os.listdir(tmp_path)) == ["TD3_1", "TD3_2"]


# ---------------------------------------------------------------------------------------------
# stable_baselines3's own callbacks and logger
# ---------------------------------------------------------------------------------------------

def test_sb3s_own_callbacks_run(capsys):
    cbs = pytest.importorskip("stable_baselines3.common.callbacks")

    class Reads(cbs.BaseCallback):
        def _on_step(self):
            assert self.model.num_timesteps == self.num_timesteps
            assert self.training_env.num_envs == 1 and self.locals["dones"].shape == (1,)
            self.logger.record("custom/calls", self.n_calls)
            return self.n_calls < 300

    reads = Reads()
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=8, buffer_size=1000,
                 policy_kwargs=TINY, seed=0)
    model.learn(1000, callback=[cbs.ProgressBarCallback(), cbs.LogEveryNTimesteps(n_steps=100),
                                cbs.EveryNTimesteps(150, cbs.StopTrainingOnMaxEpisodes(9)),
                                reads])
    assert model.num_timesteps == 300 == reads.n_calls


def test_set_logger_with_sb3s_configure(tmp_path):
    logger_mod = pytest.importorskip("stable_baselines3.common.logger")
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=8, buffer_size=1000,
                 policy_kwargs=TINY, seed=0)
    model.set_logger(logger_mod.configure(str(tmp_path), ["csv"]))
    model.learn(400, log_interval=1)
    rows = (tmp_path / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 3 and {"train/critic_loss", "rollout/ep_rew_mean"} <= set(header)


def test_a_verbose_first_run_says_it_compiles(monkeypatch, capsys):
    from numddpg.sb3 import model as sb3_model
    monkeypatch.setattr(sb3_model, "kernels_cached", lambda: False)
    model = DDPG("MlpPolicy", "Pendulum-v1", buffer_size=100, policy_kwargs=TINY, seed=0,
                 verbose=1)
    model.learn(2)
    assert "compiling kernels (first run only" in capsys.readouterr().out
    model.verbose = 0
    model.learn(2)
    assert "compiling" not in capsys.readouterr().out
