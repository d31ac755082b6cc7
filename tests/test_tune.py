"""`numddpg tune`: a small study end to end, a shared study, a failing trial, resumes, and bad
input refused before any run.

Runs are tiny (8- or 16-unit nets, 400 Pendulum steps, 2-episode final evaluations: ~1 s each
plus ~1 s to start a process), so that the file runs in about a minute on 2 cores.
"""
import contextlib
import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna", reason="numddpg tune needs the 'tune' extra: "
                                              "pip install 'numddpg[tune]'")

from numddpg.tools import hpfile                    # noqa: E402

from numddpg.tools import cli
from numddpg.tools import tune as tn                       # noqa: E402

FIXED = {"start_steps": 100, "update_after": 100, "batch_size": 16, "steps_per_epoch": 200,
         "num_test_episodes": 1, "update_every": 50}
SPACE = {"pi_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
         "hidden_sizes": {"type": "categorical", "choices": [[8], [16, 16]]}, **FIXED}
ARGS = ["--total-steps", "400", "--eval-episodes", "2", "--sampler", "random"]


def write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def run_cli(*argv):
    """(exit code, stdout, stderr) of ``numddpg ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def _default_sigint():
    """In the child before it runs Python: Ctrl-C delivered and handled as from a shell,
    whatever the test runner's own SIGINT disposition and signal mask (both are inherited)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn_cli(*argv, cwd):
    return subprocess.Popen([sys.executable, "-m", "numddpg", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def trials_of(url, name):
    return optuna.load_study(study_name=name, storage=url).get_trials()


def progress_returns(run_dir):
    return [float(r["AverageTestEpRet"]) for r in read_csv(run_dir / "progress.csv")]


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """A 2-trial study of 2 seeds each, run once through the command line."""
    tmp = tmp_path_factory.mktemp("tune")
    space = write(tmp / "space.json", SPACE)
    out = tmp / "out"
    rc, stdout, stderr = run_cli("tune", "--trials", "2", "--seeds", "0", "1", "--workers", "2",
                                 "--space", space, *ARGS, "--out", str(out))
    return out, rc, stdout, stderr, space


# -- a small study end to end -----------------------------------------------------------------

def test_a_small_study_end_to_end(studied):
    out, rc, stdout, stderr, _ = studied
    assert rc == 0, stderr
    assert "trial 1:" in stdout and "best: trial" in stdout
    rows = read_csv(out / tn.TRIALS_CSV)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 2
    for row in rows:
        trial_dir = out / f"trial{int(row['number']):04d}"
        values = []
        for seed in (0, 1):
            result = json.loads((trial_dir / f"s{seed}" / "result.json").read_text())
            config = json.loads((trial_dir / f"s{seed}" / "config.json").read_text())
            hp = config["hyperparameters"]
            assert hp["seed"] == seed and hp["blas_threads"] == 1
            assert hp["pi_lr"] == float(row["pi_lr"])
            assert hp["hidden_sizes"] == json.loads(row["hidden_sizes"])
            assert hp["batch_size"] == 16 and config["total_steps"] == 400
            assert result["final_test_return"] == float(row[f"return_s{seed}"])
            assert result["eval_episodes"] == 2
            values.append(result["final_test_return"])
        # the value: the mean of the seeds' final evaluations (std over seeds, ddof 0)
        assert float(row["mean"]) == pytest.approx(sum(values) / 2, rel=1e-12)
        assert float(row["std"]) == pytest.approx(abs(values[0] - values[1]) / 2, rel=1e-9)


def test_pruning_sees_the_seeds_mean_test_return_of_every_epoch(studied):
    out = studied[0]
    trials = trials_of(f"sqlite:///{out / tn.STUDY_DB}", "Pendulum-v1_ddpg")
    for t in trials:
        runs = [out / f"trial{t.number:04d}" / f"s{seed}" for seed in (0, 1)]
        per_seed = [progress_returns(r) for r in runs]
        expected = {200 * (e + 1): (per_seed[0][e] + per_seed[1][e]) / 2 for e in range(2)}
        assert t.intermediate_values == pytest.approx(expected, rel=1e-12)


def test_best_json_is_the_best_trial_and_trains_as_a_preset(studied, tmp_path):
    out = studied[0]
    rows = read_csv(out / tn.TRIALS_CSV)
    best_row = max(rows, key=lambda r: float(r["mean"]))
    best = json.loads((out / tn.BEST_JSON).read_text())
    assert best["tuned"]["trial"] == int(best_row["number"])
    assert best["pi_lr"] == float(best_row["pi_lr"]) and best["total_steps"] == 400
    assert best["gamma"] == 0.98 and best["batch_size"] == 16    # the preset, then the space
    assert (out / tn.HISTORY_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, stdout, stderr = run_cli("train", "--preset", str(out / tn.BEST_JSON), "--total-steps",
                                 "200", "--quiet", "--no-baseline", "--out",
                                 str(tmp_path / "run"))
    assert rc == 0, stderr
    hp = json.loads((tmp_path / "run" / "config.json").read_text())["hyperparameters"]
    assert hp["pi_lr"] == best["pi_lr"] and hp["hidden_sizes"] == best["hidden_sizes"]
    assert hp["steps_per_epoch"] == 200 and hp["seed"] == 0


def test_running_a_finished_study_again_runs_nothing(studied):
    out, _, _, _, space = studied
    rc, stdout, _ = run_cli("tune", "--trials", "2", "--seeds", "0", "1", "--space", space,
                            *ARGS, "--out", str(out))
    assert rc == 0 and "2 already there" in stdout and "trial 2" not in stdout
    assert not (out / "trial0002").exists()
    # other settings are refused, not mixed into the study
    rc, _, stderr = run_cli("tune", "--trials", "2", "--seeds", "0", "2", "--space", space,
                            *ARGS, "--out", str(out))
    assert rc == 2 and "other settings" in stderr and "seeds" in stderr


class PruneAtOnce:
    """A stand-in for an Optuna trial whose pruner stops it at the first report."""

    def __init__(self):
        self.reports = []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return bool(self.reports)


def test_a_pruned_trial_stops_its_runs(tmp_path):
    import threading

    spec = {"env": "Pendulum-v1", "algo": "ddpg", "preset": "auto", "total_steps": 20_000,
            "hyperparameters": {**FIXED, "hidden_sizes": [8], "seed": 0}}
    trial = PruneAtOnce()
    with pytest.raises(optuna.TrialPruned, match="pruned at env step 200"):
        tn.run_seeds(trial, {0: spec}, tmp_path, 1, 2, threading.Event())
    assert [step for step, _ in trial.reports] == [200]
    assert trial.reports[0][1] == progress_returns(tmp_path / "s0")[0]
    assert not (tmp_path / "s0" / "result.json").exists()      # stopped long before its end


# -- failures, sharing, resuming --------------------------------------------------------------

def test_a_trial_that_raises_is_recorded_and_the_study_goes_on(tmp_path):
    # Each value alone is valid with the preset's batch 64 and buffer 100k; batch 128 from a
    # 100-row buffer is not, and is refused when the trial's run builds the algorithm.
    space = {"batch_size": {"type": "categorical", "choices": [16, 128]},
             "replay_size": {"type": "categorical", "choices": [100, 100_000]},
             "hidden_sizes": [8], **{k: v for k, v in FIXED.items() if k != "batch_size"}}
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    study.enqueue_trial({"batch_size": 128, "replay_size": 100})
    study.enqueue_trial({"batch_size": 16, "replay_size": 100_000})
    tn.tune(trials=2, seeds=[0], total_steps=400, space=space, storage=url, study="s",
            workers=1, out=tmp_path / "out", eval_episodes=2, echo=None)
    failed, done = trials_of(url, "s")
    assert failed.state.name == "FAIL" and done.state.name == "COMPLETE"
    assert "must not exceed replay_size" in failed.user_attrs["error"]
    rows = read_csv(tmp_path / "out" / tn.TRIALS_CSV)
    assert rows[0]["state"] == "FAIL" and "must not exceed replay_size" in rows[0]["error"]
    assert json.loads((tmp_path / "out" / tn.BEST_JSON).read_text())["tuned"]["trial"] == 1


def test_two_processes_share_one_study(tmp_path):
    space = write(tmp_path / "space.json", {**SPACE, "hidden_sizes": [8]})
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    argv = ["tune", "--trials", "3", "--seeds", "0", "--workers", "1", "--space", space,
            *ARGS, "--storage", url, "--study", "shared"]
    procs = [spawn_cli(*argv, "--out", f"out{i}", cwd=tmp_path) for i in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = trials_of(url, "shared")
    # Two processes that start a trial at the same moment may both take the last place.
    assert 3 <= len(trials) <= 4 and all(t.state.name == "COMPLETE" for t in trials)
    hosts = {t.user_attrs["host"] for t in trials}
    assert len(hosts) == 2                                # both processes ran trials
    for i in (0, 1):
        rows = read_csv(tmp_path / f"out{i}" / tn.TRIALS_CSV)
        assert len(rows) == len(trials)                    # each lists the whole study
        mine = [t.number for t in trials if t.user_attrs["dir"].startswith(
            str(tmp_path / f"out{i}"))]
        assert mine and all((tmp_path / f"out{i}" / f"trial{n:04d}" / "s0" / "result.json")
                            .exists() for n in mine)


def test_ctrl_c_waits_until_every_trial_loop_has_unwound(monkeypatch):
    # A loop takes a while to record its interrupted trial after the stop; the Ctrl-C must
    # not leave run() before that.  (Python 3.11's Thread.join, interrupted by Ctrl-C, marks
    # a running thread as ended: the CLI exited with its trial still RUNNING and no retry
    # queued, and the resumed study later ran the trial a third time.)
    import threading

    runner = tn._Runner(None, {}, None, None, 1, 1, None)
    unwound = []

    def trials():
        runner.stop.wait()
        time.sleep(0.5)                  # terminating the seeds, telling the study
        unwound.append(True)

    monkeypatch.setattr(runner, "_trials", trials)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            runner.run(1)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert unwound == [True]


def interrupt_then_resume(tmp_path, sig, *extra):
    """Start a 1-trial study in a process, signal it while its trial runs, then run the same
    command again here; return (the study's trials, the killed process's exit code).  The
    signal goes once the first epoch's progress.csv exists (1,000 steps); 9,000 more steps
    keep the trial running well past it (with 2,000 steps in all, a fast machine finished the
    trial before the signal landed)."""
    space = write(tmp_path / "space.json", {**SPACE, "hidden_sizes": [8]})
    argv = ["tune", "--trials", "1", "--seeds", "0", "--workers", "1", "--space", space,
            "--total-steps", "10000", "--eval-episodes", "2", *extra, "--out", "out"]
    p = spawn_cli(*argv, cwd=tmp_path)
    progress = tmp_path / "out" / "trial0000" / "s0" / "progress.csv"
    deadline = time.time() + 120
    while not progress.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    signalled = p.poll() is None
    os.kill(p.pid, sig)
    _, p.stderr_text = p.communicate(timeout=60)
    p.stderr_text += f"\n(the signal reached a running process: {signalled})"
    rc, stdout, stderr = run_cli(*argv)
    assert rc == 0, stderr
    return trials_of(f"sqlite:///{tmp_path / 'out' / tn.STUDY_DB}", "Pendulum-v1_ddpg"), p


def test_a_study_interrupted_by_ctrl_c_resumes_with_the_same_trial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trials, p = interrupt_then_resume(tmp_path, signal.SIGINT)
    assert p.returncode == 130, p.stderr_text
    assert len(trials) == 2, [(t.number, t.state.name, t.user_attrs) for t in trials]
    first, retry = trials
    assert first.state.name == "FAIL" and first.user_attrs["interrupted"]
    assert retry.state.name == "COMPLETE" and retry.params == first.params
    assert math.isfinite(retry.value)


def test_a_study_whose_process_died_resumes_after_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trials, p = interrupt_then_resume(tmp_path, signal.SIGKILL, "--heartbeat", "1")
    assert p.returncode == -signal.SIGKILL, p.stderr_text
    assert len(trials) == 2, [(t.number, t.state.name, t.user_attrs) for t in trials]
    first, retry = trials
    assert first.state.name == "FAIL" and "error" not in first.user_attrs   # not its fault
    assert retry.state.name == "COMPLETE" and retry.params == first.params


# -- bad input: one line, exit 2, before any run ----------------------------------------------

@pytest.mark.parametrize("space, words", [
    ({"gama": 0.9}, ["'gama'", "did you mean 'gamma'"]),
    ({"target_noise": 0.1}, ["'target_noise'", "only td3 takes it"]),
    ({"seed": 3}, ["'seed'", "command line chooses the seeds"]),
    ({"gamma": "0.99"}, ['gamma = "0.99"', "takes a number"]),
    ({"hidden_sizes": [64, 0]}, ["hidden_sizes = [64, 0]", "positive integer widths"]),
    ({"gamma": {"type": "float", "low": 0.9, "high": 1.5}}, ["gamma = 1.5", "[0"]),
    ({"gamma": {"type": "float", "low": 0.99, "high": 0.9}}, ["'gamma'", "below high"]),
    ({"pi_lr": {"type": "float", "low": 0, "high": 1e-3}}, ["pi_lr = 0", "(0.0, inf]"]),
    ({"act_noise": {"type": "float", "low": 0, "high": 0.3, "log": True}},
     ["log range", "low > 0"]),
    ({"pi_lr": {"type": "float", "low": 1e-4, "hi": 1e-3}}, ["unknown key 'hi'", "allowed"]),
    ({"batch_size": {"type": "float", "low": 16, "high": 64}}, ["float range", "an integer"]),
    ({"noise": {"type": "uniform"}}, ['type "uniform"', "float, int or categorical"]),
    ({"noise": {"type": "categorical", "choices": ["ou", "pink"]}},
     ['noise = "pink"', "takes one of"]),
    ({"batch_size": {"type": "categorical", "choices": []}}, ["non-empty list"]),
    ({"batch_size": {"type": "categorical", "choices": [64, 64.0]}}, ["repeat a value"]),
    ({"batch_size": 64, "replay_size": 32}, ["fixed values", "must not exceed replay_size"]),
    ('{"gamma": 0.9, "gamma": 0.8}', ["'gamma' appears twice"]),
    ('{"gamma": NaN}', ["NaN is not a number JSON allows"]),
    ('{"gamma": 0.9', ["is not JSON"]),
    ("[1, 2]", ["one JSON object"]),
])
def test_a_bad_space_is_refused_before_any_run(tmp_path, space, words):
    path = write(tmp_path / "space.json", space)
    rc, stdout, stderr = run_cli("tune", *ARGS, "--space", path, "--out", str(tmp_path / "out"))
    assert rc == 2 and stderr.startswith("numddpg: error: ") and stderr.count("\n") == 1
    for w in words:
        assert w in stderr
    assert not (tmp_path / "out").exists()


def test_bad_options_are_refused_before_any_run(tmp_path):
    for argv, words in ((["--env", "Pendulm-v1"], "Pendulum-v1"),
                        (["--seeds", "0", "0"], "distinct"),
                        (["--trials", "0"], "trials must be"),
                        (["--storage", "nodb://x"], "database URL")):
        rc, _, stderr = run_cli("tune", *ARGS, *argv, "--out", str(tmp_path / "out"))
        assert rc == 2 and words in stderr and stderr.count("\n") == 1


@pytest.mark.parametrize("preset, words", [
    ({"gama": 0.9}, "did you mean 'gamma'"),
    ({"gamma": [0.9]}, "gamma = [0.9] is not allowed"),
    ({"gamma": 1.5}, "gamma"),
    ({"total_steps": -5}, "total_steps = -5"),
    ({"tuned": "by hand"}, "'tuned' must be an object"),
    ({"seed": 1}, "command line chooses the seeds"),
])
def test_a_bad_preset_file_is_refused_before_training(tmp_path, preset, words):
    path = write(tmp_path / "preset.json", preset)
    rc, _, stderr = run_cli("train", "--preset", path, "--out", str(tmp_path / "run"))
    assert rc == 2 and words in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_preset_files_keep_values_of_their_kind(tmp_path):
    path = write(tmp_path / "p.json", {"replay_size": 1e4, "hidden_sizes": [32, 32],
                                       "total_steps": 500, "tuned": {"by": "hand"}})
    assert hpfile.load_preset(path, "td3") == {"replay_size": 10_000, "hidden_sizes": [32, 32],
                                               "total_steps": 500}


def test_the_default_spaces_are_valid_and_sample_one_noise_scale():
    from numddpg.training.envs import make_env

    env = make_env("Pendulum-v1")
    for algo, raw in tn.DEFAULT_SPACES.items():
        space = tn.check_space(raw, algo)
        tn.check_space_values(space, algo, env)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        hp = tn.suggest(study.ask(), space, "gaussian")
        scales = {"act_noise", "ou_sigma"} & set(hp)
        assert scales == ({"act_noise"} if hp["noise"] == "gaussian" else {"ou_sigma"})
        assert isinstance(hp["hidden_sizes"], list)


def test_the_update_to_data_ratio_sets_gradient_steps():
    optuna = pytest.importorskip("optuna")
    space = tn.check_space({"update_every": {"type": "categorical", "choices": [8, 16]},
                            "utd_ratio": {"type": "categorical", "choices": [0.5, 2]}}, "ddpg")
    assert "utd_ratio" in tn.DEFAULT_SPACE and tn.fixed_values(space) == {}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        trial = study.ask()
        hp = tn.suggest(trial, space, "gaussian")
        assert "utd_ratio" not in hp
        assert hp["gradient_steps"] == round(trial.params["utd_ratio"] * hp["update_every"])
    only_ratio = tn.check_space({"utd_ratio": 0.25}, "ddpg")
    assert tn.suggest(study.ask(), only_ratio, "gaussian", 50) == {"gradient_steps": 12}
    for bad in (0, -1, "x", {"type": "float", "low": 0, "high": 2}, {"type": "int"}):
        with pytest.raises(tn.TuneError, match="update-to-data ratio"):
            tn.check_space({"utd_ratio": bad}, "ddpg")
