"""The RL Zoo (rl_zoo3) on numddpg.sb3: SB3's own noise objects and VecEnvs as the Zoo passes
them (skipped without SB3), and ``python -m numddpg.sb3.zoo`` training (with a constant and a
``lin_`` learning rate) and evaluating a tiny run (skipped without rl_zoo3).  Learning-rate
schedules themselves: tests/test_sb3_schedules.py.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numddpg.sb3 import DDPG, TD3, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from numddpg.sb3.noise import own_noise
from numddpg.sb3.zoo import ZooTD3, main

TINY = dict(net_arch=[16])
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    """One row chunk: no per-shape calibration (numddpg.kernels.threads)."""
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


# ---------------------------------------------------------------------------------------------
# The Zoo's files and arguments
# ---------------------------------------------------------------------------------------------

def test_zoo_models_name_their_files_as_the_zoo(tmp_path):
    model = ZooTD3("MlpPolicy", "Pendulum-v1", buffer_size=500, policy_kwargs=TINY, seed=0)
    model.save(tmp_path / "Pendulum-v1")
    assert (tmp_path / "Pendulum-v1.zip").is_file()
    assert not (tmp_path / "Pendulum-v1.npz").exists()
    # the Zoo's enjoy: schedule patches of old pickles, a dummy buffer size: a model to act
    loaded = ZooTD3.load(tmp_path / "Pendulum-v1.zip", seed=0, buffer_size=1,
                         custom_objects={"learning_rate": 0.0, "lr_schedule": lambda _: 0.0})
    obs = np.zeros(3)
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    assert loaded.replay_buffer is None
    with pytest.raises(ValueError, match="replay_buffer is None"):
        loaded.learn(10)
    with pytest.raises(ValueError, match="custom_objects"):
        ZooTD3.load(tmp_path / "Pendulum-v1.zip", custom_objects={"policy": None})
    assert TD3.load(tmp_path / "Pendulum-v1.zip").num_timesteps == 0    # numddpg's own format


def test_the_entry_point_names_the_zoos_scripts():
    with pytest.raises(SystemExit, match="train,enjoy"):
        main(["plot_train"])


# ---------------------------------------------------------------------------------------------
# SB3's own objects, as the Zoo passes them
# ---------------------------------------------------------------------------------------------

def test_sb3s_noise_objects_become_numddpgs_equal_ones():
    noise = pytest.importorskip("stable_baselines3.common.noise")
    normal = own_noise(noise.NormalActionNoise(np.zeros(2), 0.1 * np.ones(2)))
    assert isinstance(normal, NormalActionNoise)
    assert normal.native_hyperparameters() == {"noise": "gaussian", "act_noise": 0.1}
    sb3_ou = noise.OrnsteinUhlenbeckActionNoise(np.zeros(2), 0.3 * np.ones(2), theta=0.2,
                                                dt=0.05)
    sb3_ou()
    ou = own_noise(sb3_ou)
    assert isinstance(ou, OrnsteinUhlenbeckActionNoise)
    assert ou.native_hyperparameters() == {"noise": "ou", "ou_sigma": 0.3, "ou_theta": 0.2,
                                           "ou_dt": 0.05}
    np.testing.assert_array_equal(ou.noise_prev, sb3_ou.noise_prev)

    class Mine(noise.NormalActionNoise):
        pass

    mine = Mine(np.zeros(2), np.ones(2))
    assert own_noise(mine) is mine                       # others train as given


def test_a_model_trained_on_sb3s_vecenv_loads_without_an_env(tmp_path):
    env_util = pytest.importorskip("stable_baselines3.common.env_util")
    model = TD3("MlpPolicy", env_util.make_vec_env("Pendulum-v1", n_envs=1), buffer_size=500,
                policy_kwargs=TINY, seed=0)
    model.save(tmp_path / "m")
    loaded = TD3.load(tmp_path / "m")                    # made from the envs' shared spec
    obs = np.ones((1, 3))
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])


# ---------------------------------------------------------------------------------------------
# python -m numddpg.sb3.zoo
# ---------------------------------------------------------------------------------------------

def zoo(tmp_path, *argv):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "numddpg.sb3.zoo", *argv], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("algo", ["td3", "ddpg"])
def test_the_zoo_trains_and_enjoys_numddpgs_models(tmp_path, algo):
    pytest.importorskip("rl_zoo3")
    lin = ["learning_rate:'lin_1e-3'"] if algo == "ddpg" else []     # the Zoo's linear schedule
    out = zoo(tmp_path, "train", "--algo", algo, "--env", "Pendulum-v1", "-n", "300",
              "--seed", "0", "-f", "logs", "--eval-freq", "200", "--eval-episodes", "1",
              "-params", "learning_starts:100", "buffer_size:1000", "batch_size:32",
              "policy_kwargs:dict(net_arch=[16])", *lin)
    run = tmp_path / "logs" / algo / "Pendulum-v1_1"
    assert "Log path" in out and (run / "Pendulum-v1.zip").is_file()
    assert (run / "best_model.zip").is_file()
    evaluations = np.load(run / "evaluations.npz")
    assert list(evaluations["timesteps"]) == [200]
    loaded = (ZooTD3 if algo == "td3" else DDPG).load(run / "Pendulum-v1.zip")
    assert loaded.num_timesteps == 300
    if lin:                    # rebuilt from the file's record: progress_remaining * 1e-3
        assert repr(loaded.learning_rate) == "SimpleLinearSchedule(initial_value=0.001)"
        assert loaded.current_learning_rate == loaded.learning_rate(1.0) == 1e-3
    else:                      # the Zoo's ConstantSchedule(1e-3), rebuilt
        assert repr(loaded.learning_rate) == "ConstantSchedule(val=0.001)"
    assert loaded.native.hyperparameters["noise"] == "gaussian"       # the Zoo's normal noise
    out = zoo(tmp_path, "enjoy", "--algo", algo, "--env", "Pendulum-v1", "-f", "logs",
              "--no-render", "-n", "200")
    assert "1 Episodes" in out and "Mean reward" in out


def test_the_zoo_continues_a_trained_agent(tmp_path):
    pytest.importorskip("rl_zoo3")
    trained = ZooTD3("MlpPolicy", "Pendulum-v1", learning_starts=100, buffer_size=1000,
                     batch_size=32, policy_kwargs=dict(net_arch=[16]), seed=0).learn(300)
    first = tmp_path / "Pendulum-v1.zip"
    trained.save(first)
    out = zoo(tmp_path, "train", "--algo", "td3", "--env", "Pendulum-v1", "-n", "100",
              "--seed", "1", "-f", "logs", "--eval-freq", "-1", "-i", str(first), "-params",
              "learning_starts:100", "buffer_size:1000", "batch_size:64")   # one changed
    assert "Loading pretrained agent" in out
    continued = ZooTD3.load(tmp_path / "logs" / "td3" / "Pendulum-v1_1" / "Pendulum-v1.zip")
    assert continued.batch_size == 64 and continued.native.t == 400
    assert continued.num_timesteps == 100                  # learn() counts from 0 again
    assert continued.n_updates == trained.n_updates + 100  # the saved counts carried on


def test_the_zoo_optimizes_hyperparameters_with_optuna(tmp_path):
    pytest.importorskip("rl_zoo3")
    pytest.importorskip("optuna")
    out = zoo(tmp_path, "train", "--algo", "ddpg", "--env", "Pendulum-v1", "-n", "110",
              "--seed", "0", "-f", "logs", "-optimize", "--n-trials", "2", "--n-jobs", "1",
              "--sampler", "random", "--pruner", "none", "--n-evaluations", "1",
              "--eval-episodes", "1", "-params", "learning_starts:100", "buffer_size:1000")
    assert re.search(r"Number of finished trials: +2", out) and "Best trial" in out
    report, = (tmp_path / "logs" / "ddpg").glob("report_Pendulum-v1_2-trials-*.csv")
    rows = report.read_text().splitlines()[1:]             # the Zoo's table of the trials
    assert len(rows) == 2 and all(",COMPLETE" in row for row in rows)
