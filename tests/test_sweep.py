"""`numddpg sweep`: the grid, local and Ray runs of tiny cells, failures, resume-skip, summary.

The runs are tiny (8-unit nets, 400 Pendulum steps, ~1 s each plus ~1 s to start a process) so
that the file runs in about half a minute on 2 cores, Ray's start included.
"""
import contextlib
import csv
import io
import json
import os
import signal

import gymnasium
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from numddpg.tools import cli
from numddpg.tools import sweep as sw

TINY = ["--hidden", "8", "--start-steps", "100", "--update-after", "100", "--batch-size", "16",
        "--steps-per-epoch", "200", "--num-test-episodes", "1", "--total-steps", "400",
        "--eval-episodes", "2"]
# Two seeds of a good configuration and of a bad one (batch 16 > replay 8: refused when the
# algorithm is built, inside the worker).
ARGV = ["sweep", "--seed", "0", "1", "--replay-size", "1000", "8", *TINY, "--workers", "2"]
GOOD = ["Pendulum-v1_ddpg_replay-size1000_s0", "Pendulum-v1_ddpg_replay-size1000_s1"]
BAD = ["Pendulum-v1_ddpg_replay-size8_s0", "Pendulum-v1_ddpg_replay-size8_s1"]


class KilledEnv(PendulumEnv):
    """Pendulum whose first step kills its own process, as the out-of-memory killer would."""

    def step(self, action):
        os.kill(os.getpid(), signal.SIGKILL)


# "test_sweep:NumddpgKilled-v0" makes gymnasium import this module in the worker, registering it.
gymnasium.register("NumddpgKilled-v0", entry_point=f"{__name__}:KilledEnv", max_episode_steps=200)


def tiny_grid(**axes):
    grid = {"env": ["Pendulum-v1"], "algo": ["ddpg"], "seed": [0], "hidden_sizes": [[8]],
            "start_steps": [100], "update_after": [100], "batch_size": [16],
            "steps_per_epoch": [200], "num_test_episodes": [1], "total_steps": [400]}
    grid.update(axes)
    return grid


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep of ARGV, run once through the command line: (out dir, exit code, stdout)."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = cli.main([*ARGV, "--out", str(out)])
    return out, rc, buf.getvalue()


# -- the grid ---------------------------------------------------------------------------------

def test_cells_are_the_product_of_the_axes_with_stable_names():
    cells = sw.make_cells(tiny_grid(env=["Pendulum-v1", "MountainCarContinuous-v0"],
                                    seed=[0, 1, 2], hidden_sizes=[[64, 64], [256, 256]],
                                    gamma=[0.99, 0.9]))
    names = [name for name, _ in cells]
    assert len(names) == len(set(names)) == 2 * 3 * 2 * 2
    assert names[0] == "Pendulum-v1_ddpg_hidden64-64_gamma0.99_s0"
    assert names[1] == "Pendulum-v1_ddpg_hidden64-64_gamma0.99_s1"     # seeds innermost
    assert "MountainCarContinuous-v0_ddpg_hidden256-256_gamma0.9_s2" in names
    spec = dict(cells)["Pendulum-v1_ddpg_hidden64-64_gamma0.9_s1"]
    assert spec == {"env": "Pendulum-v1", "algo": "ddpg", "preset": "auto", "total_steps": 400,
                    "hyperparameters": {"seed": 1, "hidden_sizes": [64, 64], "start_steps": 100,
                                        "update_after": 100, "batch_size": 16,
                                        "steps_per_epoch": 200, "num_test_episodes": 1,
                                        "gamma": 0.9}}
    assert sw.config_name(names[1]) == "Pendulum-v1_ddpg_hidden64-64_gamma0.99"


def test_an_option_of_one_algorithm_is_dropped_from_the_others_cells():
    from numddpg.training.algorithms import ALGORITHMS
    if "td3" not in ALGORITHMS:
        pytest.skip("needs TD3 (with policy_delay) in ALGORITHMS")
    cells = dict(sw.make_cells(tiny_grid(algo=["ddpg", "td3"], policy_delay=[2, 3])))
    assert list(cells) == ["Pendulum-v1_ddpg_s0",            # one DDPG cell, not two alike
                           "Pendulum-v1_td3_policy-delay2_s0", "Pendulum-v1_td3_policy-delay3_s0"]
    assert "policy_delay" not in cells["Pendulum-v1_ddpg_s0"]["hyperparameters"]
    assert cells["Pendulum-v1_td3_policy-delay3_s0"]["hyperparameters"]["policy_delay"] == 3
    with pytest.raises(sw.SweepError, match="only td3 take"):
        sw.make_cells(tiny_grid(policy_delay=[2]))


@pytest.mark.parametrize("axes, message", [
    ({"seed": [0, 0]}, "repeats a value"),
    ({"algo": ["ppo"]}, "unknown algo"),
    ({"bogus_rate": [1]}, "no algorithm takes it"),
    ({"seed": []}, "at least one 'seed'"),
])
def test_bad_grids_are_refused_before_anything_runs(axes, message):
    with pytest.raises(sw.SweepError, match=message):
        sw.make_cells(tiny_grid(**axes))


# -- local runs, failures, summary, resume ----------------------------------------------------

def test_local_sweep_writes_run_directories_and_a_summary(swept):
    out, rc, stdout = swept
    assert rc == 1                              # some cells failed
    for name in GOOD:
        run = out / name
        record = json.loads((run / sw.RESULT_FILE).read_text())
        assert record["status"] == "done" and record["env_steps"] == 400
        assert record["eval_episodes"] == 2
        config = json.loads((run / "config.json").read_text())
        hp = config["hyperparameters"]
        assert hp["seed"] == int(name[-1]) and hp["hidden_sizes"] == [8]
        assert hp["replay_size"] == 1000 and hp["blas_threads"] == 1    # pinned by the sweep
        assert len(read_csv(run / "progress.csv")) == 2                   # 400 / 200 epochs
        assert (run / "policy.npz").exists() and not (run / sw.ERROR_FILE).exists()
    rows = {r["configuration"]: r for r in read_csv(out / sw.SUMMARY_CSV)}
    good = rows["Pendulum-v1_ddpg_replay-size1000"]
    finals = [json.loads((out / n / sw.RESULT_FILE).read_text())["final_test_return"]
              for n in GOOD]
    mean = sum(finals) / 2
    std = abs(finals[0] - finals[1]) / 2                                   # ddof=0 of 2 values
    assert (good["seeds_done"], good["seeds"]) == ("2", "2")
    # the CSV holds repr() of the floats, so this is exact up to the summation order
    assert float(good["mean_test_return"]) == pytest.approx(mean, rel=1e-12)
    assert float(good["std_test_return"]) == pytest.approx(std, rel=1e-12)
    assert good["errors"] == ""
    md = (out / sw.SUMMARY_MD).read_text()
    assert f"| Pendulum-v1_ddpg_replay-size1000 | 2/2 | {mean:.1f} ± {std:.1f} |  |" in md
    assert md.split("\n", 2)[2].strip() in stdout                          # printed too
    assert json.loads((out / sw.SWEEP_FILE).read_text())["cells"] == [*GOOD, *BAD]


def test_a_failing_cell_is_reported_and_does_not_stop_the_others(swept):
    out, _, stdout = swept
    row = {r["configuration"]: r for r in read_csv(out / sw.SUMMARY_CSV)}[
        "Pendulum-v1_ddpg_replay-size8"]
    assert (row["seeds_done"], row["failed_seeds"]) == ("0", "0 1")
    assert "ValueError: batch_size (16) must not exceed replay_size (8)" in row["errors"]
    for name in BAD:
        error = json.loads((out / name / sw.ERROR_FILE).read_text())
        assert error["status"] == "failed" and "Traceback" in error["traceback"]
        assert not (out / name / sw.RESULT_FILE).exists()
        assert f"{name}: FAILED: ValueError: batch_size (16)" in stdout
    md = (out / sw.SUMMARY_MD).read_text()
    assert "| Pendulum-v1_ddpg_replay-size8 | 0/2 | - | s0, s1: ValueError: batch_size" in md


def test_running_the_sweep_again_skips_finished_cells_and_retries_failed_ones(swept, capsys):
    out, _, _ = swept
    before = {n: (out / n / sw.RESULT_FILE).stat().st_mtime_ns for n in GOOD}
    failed_before = {n: (out / n / sw.ERROR_FILE).stat().st_mtime_ns for n in BAD}
    assert cli.main([*ARGV, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    for name in GOOD:
        assert f"{name}: finished earlier, skipped" in captured.out
        assert (out / name / sw.RESULT_FILE).stat().st_mtime_ns == before[name]
    assert "2 of 4 cells to run on local (2 finished earlier)" in captured.out
    for name in BAD:
        assert (out / name / sw.ERROR_FILE).stat().st_mtime_ns != failed_before[name]
    assert "2 of 4 cells failed; run the same command again" in captured.err


def test_a_finished_cell_made_with_other_settings_is_not_taken_as_done(swept):
    out, _, _ = swept
    (_, spec), = sw.make_cells(tiny_grid(total_steps=[999]))
    state, message = sw.cell_state(out / GOOD[0], spec)
    assert state == "clash" and "holds a finished run with other settings" in message
    assert "total_steps: 400 there, 999 here" in message
    assert sw.cell_state(out / GOOD[0], json.loads(
        (out / GOOD[0] / sw.RESULT_FILE).read_text())["cell"])[0] == "done"


def test_a_directory_that_is_not_a_run_is_never_removed(tmp_path):
    (name, spec), = sw.make_cells(tiny_grid())
    (tmp_path / name).mkdir()
    (tmp_path / name / "notes.txt").write_text("mine")
    rows = sw.run_sweep([(name, spec)], tmp_path, echo=None)
    assert "exists and is not a run directory of this sweep" in rows[0]["failures"][0][1]
    assert (tmp_path / name / "notes.txt").read_text() == "mine"


def test_a_worker_that_dies_fails_its_cell_alone(tmp_path):
    cells = sw.make_cells(tiny_grid(env=["test_sweep:NumddpgKilled-v0"]))
    lines = []
    rows = sw.run_sweep(cells, tmp_path, workers=1, eval_episodes=1, echo=lines.append)
    (name, _), = cells
    error = json.loads((tmp_path / name / sw.ERROR_FILE).read_text())["error"]
    assert error.startswith("the worker process died (killed by SIGKILL) (out of memory?)")
    assert rows[0]["failures"] == [(0, error)] and rows[0]["done"] == 0


def test_ray_backend_without_ray_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)     # "import ray" fails
    with pytest.raises(sw.SweepError, match=r"pip install 'numddpg\[ray\]'"):
        sw.run_sweep(sw.make_cells(tiny_grid()), tmp_path, backend="ray")


# -- Ray ----------------------------------------------------------------------------------------

def test_ray_backend_returns_run_directories_to_the_head(tmp_path):
    ray = pytest.importorskip("ray")
    cells = sw.make_cells(tiny_grid(seed=[0, 1]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = sw.run_sweep(cells, tmp_path / "out", backend="ray", eval_episodes=2, echo=None)
        assert ray.is_initialized()             # a Ray the caller started is left running
    finally:
        ray.shutdown()
    assert rows[0]["done"] == 2 and rows[0]["failures"] == []
    for name, spec in cells:
        run = tmp_path / "out" / name
        assert {p.name for p in run.iterdir()} >= {"config.json", "policy.npz", "progress.csv",
                                                   "result.json"}
        record = json.loads((run / sw.RESULT_FILE).read_text())
        assert record["cell"] == spec and record["pid"] != os.getpid()     # ran on a worker
    # The same cell run here, in this process, gives the same numbers: the run is a function
    # of its seed, whichever backend ran it.
    name, spec = cells[1]
    here = sw.run_cell(spec, tmp_path / "here", eval_episodes=2)
    there = json.loads((tmp_path / "out" / name / sw.RESULT_FILE).read_text())
    assert here["final_test_return"] == there["final_test_return"]
    assert (tmp_path / "here" / "progress.csv").read_text().splitlines()[1].split(",")[:8] == \
        (tmp_path / "out" / name / "progress.csv").read_text().splitlines()[1].split(",")[:8]
