"""Users' files survive the package's changes: files written by numddpg 0.1.0 before the
package was reshaped (tests/fixtures/v0.1, made by make_v0_1_files.py there) load, act,
evaluate and resume exactly as files written today.

A resume is compared bit for bit with an uninterrupted run made here by today's code (so the
check does not depend on this CPU's rounding matching the one that wrote the files).  Actions
are compared with the ones stored when the files were written, to 1e-6 relative: the
NumPy-only policy's float32 products may round differently on another CPU's BLAS kernels; on
the machine that wrote them they agree exactly.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest

import numddpg
from numddpg import sb3
from numddpg.agents import load_agent       # a module path of 0.1.0, kept working

OLD = Path(__file__).resolve().parent / "fixtures" / "v0.1"
EXPECTED = np.load(OLD / "expected.npz")
HP = dict(hidden_sizes=(8,), steps_per_epoch=400, start_steps=200, update_after=200,
          update_every=25, batch_size=16, replay_size=10_000, num_test_episodes=1,
          checkpoint_every=200, seed=7, chunks=1, blas_threads=1)
ALGOS = {"ddpg": numddpg.DDPG, "td3": numddpg.TD3}


def same_agent(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sorted(sa) == sorted(sb) and all(
        sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]) for k in sa)


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def progress(run_dir):
    lines = (Path(run_dir) / "progress.csv").read_text().splitlines()
    return [line.rsplit(",", 2)[0] for line in lines]        # without SPS and Time


@pytest.mark.parametrize("algo", ALGOS)
def test_an_old_interrupted_run_resumes_as_an_uninterrupted_run_today(tmp_path, algo):
    run = tmp_path / "run"
    shutil.copytree(OLD / f"run_{algo}", run)
    resumed = ALGOS[algo].resume(run, progress_bar=False)
    ref = ALGOS[algo]("Pendulum-v1", run_dir=tmp_path / "ref", **HP)
    ref.learn(1000, progress_bar=False)
    assert resumed.t == ref.t == 1000
    assert same_agent(resumed.agent, ref.agent)
    assert progress(run) == progress(tmp_path / "ref")


@pytest.mark.parametrize("algo", ALGOS)
def test_an_old_model_file_loads_acts_and_trains_on_identically(algo):
    old = ALGOS[algo].load(OLD / f"model_{algo}.npz")
    # written before n_critics existed: the algorithm's own number, the only one there was
    assert old.n_critics == old.agent.n_critics == {"ddpg": 1, "td3": 2}[algo]
    assert old.n_steps == old.buffer.n_steps == 1           # (files before n-step returns)
    close(np.stack([old.predict(o)[0] for o in EXPECTED["obs"]]), EXPECTED[f"predict_{algo}"])
    ref = ALGOS[algo]("Pendulum-v1", log=False, **HP)
    ref.learn(600, progress_bar=False)
    assert same_agent(old.agent, ref.agent)                  # the file is what today writes
    old.learn(700, progress_bar=False)
    ref.learn(700, progress_bar=False)
    assert same_agent(old.agent, ref.agent)
    mean, std = old.evaluate(3, seed=0)
    assert (mean, std) == ref.evaluate(3, seed=0)


@pytest.mark.parametrize("algo", ALGOS)
def test_old_policy_and_agent_files_act_as_they_did(algo):
    obs = EXPECTED["obs"]
    for path in (OLD / f"policy_{algo}.npz", OLD / f"run_{algo}"):
        policy = numddpg.load_policy(path)
        assert np.stack([policy(o) for o in obs]).shape == (8, 1)
    close(np.stack([numddpg.load_policy(OLD / f"policy_{algo}.npz")(o) for o in obs]),
          EXPECTED[f"predict_{algo}"])
    agent = load_agent(OLD / f"agent_{algo}.npz")
    assert agent.n_critics == {"ddpg": 1, "td3": 2}[algo]
    close(np.stack([agent.act(o) for o in obs]), EXPECTED[f"agent_act_{algo}"])


def test_an_old_sb3_model_file_loads_and_predicts_as_it_did():
    model = sb3.DDPG.load(OLD / "sb3_ddpg.npz")
    assert model.policy_kwargs["n_critics"] == 1 == model.critic.n_critics
    close(model.predict(EXPECTED["obs"], deterministic=True)[0], EXPECTED["sb3_predict"])


def test_the_old_command_module_still_runs():
    """``python -m numddpg.cli`` (0.1.0's way to run the command) runs numddpg.tools.cli as
    __main__, and its errors stay one line (no traceback)."""
    import subprocess
    import sys
    run = [sys.executable, "-m", "numddpg.cli", "train", "--env", "Nope-v0"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown environment id 'Nope-v0'" in out.stderr
    assert "Traceback" not in out.stderr
