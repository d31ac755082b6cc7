"""Hostile files, buggy envs and a second process (issue 15): each class of attack is tried with
many members (hypothesis where the class is large), and each must end in a clear error that
names what is wrong, with nothing lost and no code run.

    files choose no code      an env id with a module part, read from a policy, a checkpoint
                              or config.json, never imports that module (a tripwire module
                              records any import)
    no allocation from files  sizes larger than the free memory are refused before allocating
    kernel boundary           an env whose reset/step returns the wrong shape, dtype or a
                              reward that is not one number is stopped, naming the env, the
                              call and both shapes; the buffer is left as it was
    one writer                a held run directory is refused naming the holder's PID; a lock
                              left by a killed process does not block
    a resume resumes its own  a foreign checkpoint is refused; a run that never checkpointed
                              (full disk, killed) restarts, bit-identical to a fresh run
"""
import json
import math
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import rewrite_meta
from numddpg import checks

from numddpg.tools import cli
from numddpg.training.algorithms import (CHECKPOINT_FILE, DDPG, TD3, NonFiniteError, OffPolicyAlgorithm,
                                         RunWriteError)
from numddpg.files.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from numddpg.checks import TooLarge
from numddpg.training.envs import EnvError, EnvFailure, make_recorded_env
from numddpg.files.rundir import RunDirBusy, RunLock

TINY = dict(hidden_sizes=(8,), start_steps=50, update_after=50, update_every=10, batch_size=8,
            steps_per_epoch=100, num_test_episodes=1, replay_size=1000, chunks=1, seed=0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny run: config.json, progress.csv, policy.npz, checkpoint.npz."""
    path = tmp_path_factory.mktemp("hard") / "run"
    DDPG("Pendulum-v1", run_dir=path, **TINY).learn(200, progress_bar=False)
    return path




def copy_run(src, dst):
    dst.mkdir()
    for name in ("config.json", "progress.csv", "policy.npz", CHECKPOINT_FILE):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


# ---------------------------------------------------------------------------------------------
# 1. Nothing read from a file decides what code runs
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def tripwire(tmp_path, monkeypatch):
    """make(name): a module ``name`` on sys.path whose import creates a marker file; returns
    the marker's path (it exists iff the module was imported)."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def make(name):
        marker = folder / f"{name}.imported"
        (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
        return marker
    return make


MODULE = st.from_regex(r"tw_[a-z0-9_]{1,12}(\.[a-z][a-z0-9_]{0,6})?", fullmatch=True)


@settings(max_examples=15)
@given(module=MODULE, kind=st.sampled_from(["policy", "checkpoint", "config"]))
def test_an_env_id_read_from_a_file_never_imports_its_module(run_dir, tmp_path_factory, module,
                                                             kind):
    top = module.split(".")[0]
    folder = tmp_path_factory.mktemp("mods")
    marker = folder / f"{top}.imported"
    (folder / f"{top}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    sys.path.insert(0, str(folder))
    try:
        env_id = f"{module}:Pendulum-v1"
        run = copy_run(run_dir, tmp_path_factory.mktemp("r") / "run")
        def edit(m):                           # the id and the env record's id
            m.update(env_id=env_id, env=dict(m["env"], id=env_id))
        if kind == "policy":
            rewrite_meta(run_dir / "policy.npz", run / "policy.npz", edit)
            assert cli.main(["eval", str(run), "--episodes", "1"]) == 2
        elif kind == "checkpoint":
            rewrite_meta(run_dir / CHECKPOINT_FILE, run / CHECKPOINT_FILE, edit)
            with pytest.raises(CheckpointError, match="never imports code that a file names"):
                OffPolicyAlgorithm.load(run / CHECKPOINT_FILE)
        else:                                  # a run that never checkpointed: from config.json
            (run / CHECKPOINT_FILE).unlink()
            config = json.loads((run / "config.json").read_text())
            edit(config)
            (run / "config.json").write_text(json.dumps(config))
            with pytest.raises(EnvError, match=f"--env-module {module}"):
                OffPolicyAlgorithm.resume(run, progress_bar=False)
        assert not marker.exists() and top not in sys.modules
    finally:
        sys.path.remove(str(folder))


REGISTERING_MODULE = """
import gymnasium as gym
open({marker!r}, 'w').close()
gym.register("TwPendulum-v0", entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
             max_episode_steps=200)
"""


def test_a_custom_env_module_is_imported_only_when_the_user_names_it(tmp_path, tripwire,
                                                                     capsys):
    marker = tripwire("tw_custom")
    (marker.parent / "tw_custom.py").write_text(REGISTERING_MODULE.format(marker=str(marker)))
    run = tmp_path / "run"
    DDPG("tw_custom:TwPendulum-v0", run_dir=run, **TINY).learn(200, progress_bar=False)
    assert marker.exists()
    config = json.loads((run / "config.json").read_text())
    assert (config["env_id"], config["env_module"]) == ("TwPendulum-v0", "tw_custom")
    del gym.envs.registry["TwPendulum-v0"], sys.modules["tw_custom"]     # a new process
    marker.unlink()
    assert cli.main(["eval", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "--env-module tw_custom" in err and not marker.exists()
    assert cli.main(["eval", str(run), "--episodes", "1", "--env-module", "tw_custom"]) == 0
    assert marker.exists()
    try:
        model = OffPolicyAlgorithm.resume(run, total_steps=300, progress_bar=False,
                                          env_module="tw_custom")
        assert model.t == 300 and model.env_id == "TwPendulum-v0"
    finally:                                   # leave the registry as other tests expect it
        gym.envs.registry.pop("TwPendulum-v0", None)
        sys.modules.pop("tw_custom", None)


def test_make_recorded_env_refuses_every_module_form_and_non_strings():
    for bad in ("os:Pendulum-v1", "a.b:Pendulum-v1", ":Pendulum-v1x", None, 3, ["x"]):
        with pytest.raises(EnvError):
            make_recorded_env(bad)
    assert make_recorded_env("Pendulum-v1").spec.id == "Pendulum-v1"


# ---------------------------------------------------------------------------------------------
# 2. No allocation larger than the file (or the flag) justifies
# ---------------------------------------------------------------------------------------------

GIB = 2**30


@settings(max_examples=20)
@given(replay=st.integers(10**8, 10**15), batch=st.integers(1, 10**12),
       hidden=st.lists(st.integers(1, 10**6), min_size=1, max_size=3))
def test_sizes_beyond_the_free_memory_are_refused_before_allocating(replay, batch, hidden):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checks, "available_memory", lambda: 2 * GIB)
        kw = dict(TINY, replay_size=replay, batch_size=min(batch, replay), hidden_sizes=hidden)
        with pytest.raises(TooLarge, match="GiB of memory, but this machine has 2.0 GiB"):
            DDPG("Pendulum-v1", log=False, **kw)


@pytest.mark.parametrize("where", ["checkpoint", "config"])
def test_a_file_asking_for_too_much_memory_is_refused(run_dir, tmp_path, monkeypatch, where):
    monkeypatch.setattr(checks, "available_memory", lambda: 2 * GIB)
    run = copy_run(run_dir, tmp_path / "run")
    huge = 10**11
    if where == "checkpoint":
        def edit(m):
            m["hyperparameters"]["replay_size"] = m["buffer"]["max_size"] = huge
        rewrite_meta(run_dir / CHECKPOINT_FILE, run / CHECKPOINT_FILE, edit)
        with pytest.raises((CheckpointError, TooLarge), match="100,000,000,000"):
            OffPolicyAlgorithm.load(run / CHECKPOINT_FILE)
    else:
        (run / CHECKPOINT_FILE).unlink()
        config = json.loads((run / "config.json").read_text())
        config["hyperparameters"]["replay_size"] = huge
        (run / "config.json").write_text(json.dumps(config))
        with pytest.raises((CheckpointError, TooLarge), match="GiB"):
            OffPolicyAlgorithm.resume(run, progress_bar=False)


def test_a_huge_replay_size_flag_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["train", "--replay-size", str(10**13), "--out", str(tmp_path / "r"),
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GiB of memory" in err and "10,000,000,000,000" in err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------
# 3. The kernel boundary: what an env returns is checked before any kernel sees it
# ---------------------------------------------------------------------------------------------

KEEP = object()


class Faulty(gym.Wrapper):
    """Pendulum whose reset (at=0) or step number ``at`` returns ``obs`` and/or ``rew``
    instead of its own."""

    def __init__(self, at, obs=KEEP, rew=KEEP):
        super().__init__(gym.make("Pendulum-v1"))
        self.at, self.bad_obs, self.bad_rew, self.n = at, obs, rew, 0

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        return (self.bad_obs if self.at == 0 and self.bad_obs is not KEEP else obs), info

    def step(self, a):
        obs, r, term, trunc, info = self.env.step(a)
        self.n += 1
        if self.n == self.at:
            obs = obs if self.bad_obs is KEEP else self.bad_obs
            r = r if self.bad_rew is KEEP else self.bad_rew
        return obs, r, term, trunc, info


BAD_OBS = st.one_of(
    st.sampled_from([(), (2,), (4,), (6,), (3, 1), (1, 3), (0,)]).map(np.zeros),
    st.sampled_from([np.complex128, object, "U3", bool]).map(lambda t: np.zeros(3, t)),
    st.lists(st.floats(-1, 1), min_size=0, max_size=6).filter(lambda x: len(x) != 3),
    st.sampled_from([None, "obs", {"x": 1}, 3.0]))


@settings(max_examples=25)
@given(obs=BAD_OBS, at=st.sampled_from([0, 1, 7, 60]))
def test_a_wrong_observation_stops_training_naming_env_call_and_shapes(obs, at):
    model = DDPG(Faulty(at, obs=obs), test_env=gym.make("Pendulum-v1"), log=False, **TINY)
    with pytest.raises(EnvFailure) as info:
        model.learn(100, progress_bar=False)
    message = str(info.value)
    assert "Pendulum-v1" in message and "shape (3,)" in message
    assert ("reset" if at == 0 else f"step at env step {at}") in message
    assert f"shape {np.asarray(obs, dtype=object).shape}" in message
    assert model.buffer.size == max(at - 1, 0)             # the bad transition was not stored
    assert not model.buffer.obs[model.buffer.size:].any()


@pytest.mark.parametrize("rew", [np.zeros(3), None, "1.0", [1.0, 2.0], {"r": 1}])
def test_a_reward_that_is_not_one_number_stops_training(rew):
    model = DDPG(Faulty(5, rew=rew), test_env=gym.make("Pendulum-v1"), log=False, **TINY)
    with pytest.raises(EnvFailure, match="step at step 5 returned a reward"):
        model.learn(100, progress_bar=False)


def test_one_element_arrays_and_ints_are_accepted_as_they_are_numbers():
    for obs in (np.zeros(3, np.float16), np.zeros(3, np.int64), [0.0, 0.1, 0.2]):
        model = DDPG(Faulty(3, obs=obs, rew=np.array([1.0])), log=False, **TINY)
        model.learn(60, progress_bar=False)
        assert model.buffer.size == 60


def test_update_burst_checks_the_replay_arrays():
    from types import SimpleNamespace
    from numddpg.engine.agents import DDPGAgent
    agent = DDPGAgent(3, 1, -1.0, 1.0, hidden_sizes=(4,), seed=0)
    good = dict(obs=np.zeros((10, 3), np.float32), act=np.zeros((10, 1), np.float32),
                rew=np.zeros(10, np.float32), obs2=np.zeros((10, 3), np.float32),
                done=np.zeros(10, np.float32), size=10)
    agent.update_burst(SimpleNamespace(**good), 4, 1)
    for bad in (dict(obs=np.zeros((10, 4), np.float32)), dict(act=np.zeros((9, 1), np.float32)),
                dict(rew=np.zeros(10, np.int64)), dict(done=np.zeros((10, 1), np.float32)),
                dict(obs2=np.zeros((3, 10), np.float32).T), dict(size=11), dict(size=-1),
                dict(size=2.5), dict(size=0), dict(obs=None)):
        with pytest.raises(ValueError, match="replay buffer"):
            agent.update_burst(SimpleNamespace(**{**good, **bad}), 4, 1)


@pytest.mark.skipif(os.environ.get("NUMBA_BOUNDSCHECK") != "1",
                    reason="runs in CI's NUMBA_BOUNDSCHECK=1 pass of the kernel tests")
def test_boundscheck_is_on_in_the_boundscheck_pass():
    """The proof that the pass checks bounds: a kernel that writes a row past its array."""
    from numddpg.engine.buffer import store_kernel
    buf = [np.zeros((2, 3)), np.zeros((2, 1)), np.zeros(2), np.zeros((2, 3)), np.zeros(2)]
    with pytest.raises(IndexError):
        store_kernel(*buf, 5, np.zeros(3), np.zeros(1), 0.0, np.zeros(3), 0.0, 1e300)


# ---------------------------------------------------------------------------------------------
# 4. One writer per run directory
# ---------------------------------------------------------------------------------------------

HOLD = "import sys, time; from numddpg.files.rundir import RunLock; RunLock(sys.argv[1]).acquire(); " \
       "print('held', flush=True); time.sleep(60)"


def hold_lock(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_run_directory_is_refused_naming_the_pid_and_a_killed_holder_does_not_block(
        run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    holder = hold_lock(run)
    try:
        with pytest.raises(RunDirBusy, match=f"in use by process {holder.pid}"):
            RunLock(run).acquire()
        assert cli.main(["train", "--resume", str(run), "--total-steps", "300", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err and err.count("\n") == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = RunLock(run).acquire()              # the kernel dropped the dead process's lock
    lock.release()
    model = OffPolicyAlgorithm.resume(run, total_steps=300, progress_bar=False)
    assert model.t == 300


# ---------------------------------------------------------------------------------------------
# 5. A resume resumes its own run; no directory gets stuck
# ---------------------------------------------------------------------------------------------

def test_a_checkpoint_from_another_run_is_refused(run_dir, tmp_path):
    other = tmp_path / "other"
    DDPG("Pendulum-v1", run_dir=other, **dict(TINY, seed=5)).learn(200, progress_bar=False)
    run = copy_run(run_dir, tmp_path / "run")
    (run / CHECKPOINT_FILE).write_bytes((other / CHECKPOINT_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="does not belong to this run directory: seed 5"):
        OffPolicyAlgorithm.resume(run, progress_bar=False)


def test_a_run_whose_first_checkpoint_failed_restarts_exactly(tmp_path, monkeypatch):
    import errno
    from numddpg.files import checkpoint
    real = checkpoint.write_checkpoint

    def full_disk(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint, "write_checkpoint", full_disk)
    with pytest.raises(RunWriteError, match=r"checkpoint.npz .*No space left.*--resume"):
        DDPG("Pendulum-v1", run_dir=tmp_path / "stuck", **TINY).learn(300, progress_bar=False)
    monkeypatch.setattr(checkpoint, "write_checkpoint", real)
    assert not (tmp_path / "stuck" / CHECKPOINT_FILE).exists()
    resumed = OffPolicyAlgorithm.resume(tmp_path / "stuck", progress_bar=False)
    fresh = DDPG("Pendulum-v1", run_dir=tmp_path / "fresh", **TINY).learn(300,
                                                                          progress_bar=False)
    assert resumed.t == fresh.t == 300
    assert np.array_equal(resumed.agent.actor.params, fresh.agent.actor.params)
    rows = (tmp_path / "stuck" / "progress.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and rows[1].startswith("1,100,")


def test_a_full_disk_mid_run_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    import errno
    from numddpg.files import checkpoint
    real, calls = checkpoint.write_checkpoint, []

    def fills_up(path, *a, **k):
        calls.append(path)
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *a, **k)
    monkeypatch.setattr(checkpoint, "write_checkpoint", fills_up)
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--total-steps", "500", "--hidden", "8",
            "--start-steps", "50", "--update-after", "50", "--batch-size", "8",
            "--steps-per-epoch", "100", "--num-test-episodes", "1", "--replay-size", "1000",
            "--chunks", "1", "--quiet", "--no-baseline"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left" in err and "is kept" in err
    monkeypatch.setattr(checkpoint, "write_checkpoint", real)
    assert OffPolicyAlgorithm.resume(run, progress_bar=False).t == 500


# ---------------------------------------------------------------------------------------------
# 6. The command line: one line and an exit code, never a traceback
# ---------------------------------------------------------------------------------------------

def one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("numddpg") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("argv, code, text", [
    (["train", "--env", "NoSuchEnv-v0"], 2, "unknown environment id"),
    (["train", "--env", "not an id"], 2, "not a usable gymnasium id"),
    (["train", "--env", "tw_missing_module:Pendulum-v1"], 2, "cannot import module"),
    (["train", "--gamma", "1.5"], 2, "gamma must lie in [0, 1]"),
    (["train", "--hidden", "0"], 2, "hidden_sizes must all be positive"),
    (["train", "--resume", "/dev/null"], 2, "is not a directory"),
    (["eval", "/dev/null"], 2, "/dev/null"),
    (["export", "/nonexistent-dir", "x.npz"], 2, "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(argv, code, text, capsys):
    assert cli.main(argv) == code
    assert text in one_line(capsys)


@pytest.mark.parametrize("argv, text", [
    (["train", "--checkpoint-buffer", "maybe"], "expected true or false, got 'maybe'"),
    (["train", "--replay-size", "2.5e0"], "expected a whole number, got '2.5e0'"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["eval"], "the following arguments are required"),
])
def test_argument_errors_are_one_line_and_exit_2(argv, text, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2 and text in one_line(capsys)


def test_flags_take_whole_numbers_in_any_spelling_and_strict_booleans():
    args = cli.build_parser().parse_args(["train", "--replay-size", "1e6", "--batch-size",
                                          "1_000", "--checkpoint-buffer", "False"])
    assert (args.replay_size, args.batch_size, args.checkpoint_buffer) == (10**6, 1000, False)


def test_a_missing_env_family_names_the_extra(monkeypatch, capsys):
    from gymnasium.error import DependencyNotInstalled

    def no_mujoco(env_id, **kw):
        raise DependencyNotInstalled("MuJoCo is not installed, run `pip install mujoco`")
    monkeypatch.setattr(gym, "make", no_mujoco)
    assert cli.main(["train", "--env", "HalfCheetah-v5"]) == 2
    assert "pip install 'numddpg[mujoco]'" in one_line(capsys)


def test_an_out_path_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert cli.main(["train", "--out", str(tmp_path / "file" / "run"), "--quiet"]) == 2
    assert "is a file, not a directory" in one_line(capsys)


def test_ctrl_c_during_startup_and_final_evaluation(tmp_path, monkeypatch, capsys):
    def interrupt(*a, **k):
        raise KeyboardInterrupt
    with monkeypatch.context() as mp:
        mp.setattr(DDPG, "_make_agent", interrupt)
        assert cli.main(["train", "--quiet"]) == 130
        assert "interrupted" in capsys.readouterr().err
    monkeypatch.setattr(DDPG, "evaluate", interrupt)
    argv = ["train", "--out", str(tmp_path / "run"), "--total-steps", "200", "--hidden", "8",
            "--start-steps", "50", "--update-after", "50", "--batch-size", "8",
            "--steps-per-epoch", "100", "--num-test-episodes", "1", "--chunks", "1", "--quiet"]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "final evaluation" in err and "complete and saved" in err
    assert (tmp_path / "run" / CHECKPOINT_FILE).exists()


def test_sigterm_saves_says_how_to_resume_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "numddpg", "train", "--out", str(run), "--total-steps",
            "100000", "--hidden", "8", "--start-steps", "50", "--update-after", "50",
            "--batch-size", "8", "--steps-per-epoch", "200", "--num-test-episodes", "1",
            "--chunks", "1", "--quiet", "--no-baseline"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "progress.csv").exists() or len(
            (run / "progress.csv").read_text().splitlines()) < 3:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"numddpg train --resume {run}" in err
    saved_at = read_checkpoint(run / CHECKPOINT_FILE, allow_nonfinite=(
        "epoch.update_stats",))[0]["loop"]["t"]
    model = OffPolicyAlgorithm.resume(run, total_steps=saved_at + 200, progress_bar=False)
    assert model.t == saved_at + 200


def test_float16_spaces_train_and_evaluate():
    from gymnasium import spaces

    class Half(gym.Env):
        observation_space = spaces.Box(-1, 1, (3,), np.float16)
        action_space = spaces.Box(-2, 2, (1,), np.float16)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.k = 0
            return np.zeros(3, np.float16), {}

        def step(self, a):
            assert a.dtype == np.float16 and self.action_space.contains(a)
            self.k += 1
            return np.full(3, 0.5, np.float16), -float(abs(a[0])), False, self.k >= 50, {}

    model = DDPG(Half(), test_env=Half(), log=False, **TINY)
    model.learn(200, progress_bar=False)
    action, _ = model.predict(np.zeros(3, np.float16))
    assert action.dtype == np.float16 and np.isfinite(model.evaluate(2)[0])


# ---------------------------------------------------------------------------------------------
# 7. The NaN guard has no holes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [DDPG, TD3])
def test_divergence_only_in_the_actor_is_caught(cls, tmp_path):
    model = cls("Pendulum-v1", log=False, **TINY)
    burst = model.agent.update_burst

    def poisoned(*a, **k):
        stats = burst(*a, **k)
        if model.t >= 80:
            model.agent.actor.params[3] = np.nan   # the statistics of this burst are clean
        return stats
    model.agent.update_burst = poisoned
    with pytest.raises(NonFiniteError, match="env step 80 .*'actor'"):
        model.learn(200, progress_bar=False)


def test_a_reward_beyond_float32_is_refused_like_a_nan():
    model = DDPG(Faulty(9, rew=1e39), test_env=gym.make("Pendulum-v1"), log=False, **TINY)
    with pytest.raises(EnvFailure, match="non-finite reward at env step 9 .*float32"):
        model.learn(100, progress_bar=False)


def test_an_infinite_test_return_never_breaks_a_json_write(tmp_path):
    class Huge(gym.Wrapper):
        def step(self, a):
            obs, r, term, trunc, info = self.env.step(a)
            return obs, 1.7e308, term, trunc, info        # finite each, inf summed in float64
    model = DDPG("Pendulum-v1", test_env=Huge(gym.make("Pendulum-v1")), run_dir=tmp_path / "r",
                 **TINY)
    model.learn(200, progress_bar=False)
    assert model.last_test_return == np.inf
    loaded = OffPolicyAlgorithm.load(tmp_path / "r" / CHECKPOINT_FILE)
    assert np.isnan(loaded.last_test_return) and loaded.t == 200


# ---------------------------------------------------------------------------------------------
# 8. The Python API names the bad argument; nothing is silently coerced
# ---------------------------------------------------------------------------------------------

BAD_VALUES = [None, True, "64", 32.7, -1, [1], {"a": 1}, float("nan")]
def accepted(name, value):
    """Whether ``value`` is a legal value of hyperparameter ``name`` (some are, for some),
    from its kind and range in numddpg.engine.hyperparameters."""
    spec = TD3.hyperparameter_specs()[name]
    if value is None:
        return spec.optional
    if spec.kind == "widths":
        return value == [1]                    # one layer of width 1
    if spec.kind == "bool":
        return value is True
    return spec.kind == "real" and value == 32.7 and spec.high == float("inf")


@settings(max_examples=300)
@given(name=st.sampled_from(sorted(TD3.hyperparameter_table())), value=st.sampled_from(BAD_VALUES))
def test_a_bad_hyperparameter_raises_naming_it(name, value):
    kw = dict(TINY, **{name: value})
    if accepted(name, value):
        TD3("Pendulum-v1", log=False, **kw)    # (and it is accepted)
        return
    with pytest.raises((ValueError, TypeError), match=name):
        TD3("Pendulum-v1", log=False, **kw)


@pytest.mark.parametrize("call", [lambda m: m.evaluate(0), lambda m: m.evaluate("3"),
                                  lambda m: m.evaluate(2.5), lambda m: m.learn("10"),
                                  lambda m: m.learn(True)])
def test_evaluate_and_learn_name_bad_counts(call):
    model = DDPG("Pendulum-v1", log=False, **TINY)
    with pytest.raises(ValueError, match="n_episodes|total_steps"):
        call(model)


# ---------------------------------------------------------------------------------------------
# 9. Every metadata field of every file kind, set to every kind of wrong value
# ---------------------------------------------------------------------------------------------

FUZZ_VALUES = [None, True, -1, 10**30, 1.5, "x", [1], {"a": 1}]
META_MEMBER = "__meta__.npy"


def fields(record, path=()):
    """The path of every field of a JSON record: each key of each object and each element of
    each list, at every depth."""
    items = record.items() if isinstance(record, dict) else (
        enumerate(record) if isinstance(record, list) else ())
    for key, value in items:
        yield path + (key,)
        yield from fields(value, path + (key,))


def with_field(record, path, value):
    record = json.loads(json.dumps(record))
    node = record
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return record


def doctored(src, dst, meta):
    """``src`` with its metadata member replaced by ``meta`` (the arrays untouched)."""
    import io
    import zipfile
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = buf.getvalue() if info.filename == META_MEMBER else zin.read(info)
            zout.writestr(info.filename, data)
    return dst


ENVELOPE = ("format", "format_version", "numddpg_version", "arrays")


def full_record(path):
    import zipfile
    with zipfile.ZipFile(path) as zf:
        return json.loads(np.lib.format.read_array(zf.open(META_MEMBER)).tobytes())


def record_of(path):
    """The record without the envelope (which each writer writes anew)."""
    return {k: v for k, v in full_record(path).items() if k not in ENVELOPE}


def same(a, b):
    """Equal JSON values, a number compared as the float64 it is read as (10**30 and 1e30 are
    the same number), but a bool never equal to a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def arrays_of(path):
    return {k: v.tolist() for k, v in read_checkpoint(
        path, allow_nonfinite=("epoch.update_stats",))[1].items()}


def resave(kind, got, path):
    """Write what was loaded back to ``path`` with the kind's own writer."""
    from numddpg.engine.agents import save_agent
    from numddpg.files.policy import save_policy
    if kind == "agent":
        return save_agent(path, got)
    if kind == "policy":
        info = {k: v for k, v in got.meta.items() if k not in ENVELOPE + (
            "kind", "layer_sizes", "dtype", "act_dtype", "hidden_activation",
            "output_activation")}
        return save_policy(path, got.params, got.layer_sizes, got.mid, got.half, got.low,
                           got.high, got.act_dtype, **info)
    return got.save(path)


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory):
    from numddpg.engine.agents import TD3Agent, load_agent, save_agent
    from numddpg.files.policy import load_policy
    folder = tmp_path_factory.mktemp("fuzz")
    model = TD3("Pendulum-v1", log=False, **dict(TINY, replay_size=300))
    model.learn(200, progress_bar=False)       # ends an episode: a boundary, an exact load
    agent = TD3Agent(3, 1, -2.0, 2.0, hidden_sizes=(4,), seed=0)
    return {"agent": (save_agent(folder / "agent.npz", agent), load_agent),
            "policy": (model.save_policy(folder / "policy.npz"), load_policy),
            "algorithm": (model.save(folder / "run.npz"), TD3.load)}


@pytest.mark.parametrize("kind", ["agent", "policy", "algorithm"])
def test_every_metadata_field_set_to_every_wrong_kind_of_value(saved_files, tmp_path, kind):
    """Each doctored file is refused (CheckpointError), or loads exactly what it says: written
    back by the kind's own writer, the record and the arrays are the doctored file's (so no
    value was coerced, dropped or half-applied).  The counts go to the test's output."""
    path, load = saved_files[kind]
    meta = full_record(path)
    tried = refused = 0
    for field in fields(meta):
        for value in FUZZ_VALUES:
            bad = doctored(path, tmp_path / "bad.npz", with_field(meta, field, value))
            tried += 1
            try:
                got = load(bad)
            except CheckpointError:
                refused += 1
                continue
            back = resave(kind, got, tmp_path / "back.npz")
            assert same(record_of(back), record_of(bad)), (field, value)
            assert arrays_of(back) == arrays_of(bad), (field, value)
    print(f"\n{kind}: {tried} doctored files, {refused} refused, {tried - refused} loaded "
          "exactly as written")
    assert refused > tried // 2


# =============================================================================================
# Round two (issue: the env record, the vector record, the run lock and the tuning files are
# untrusted input too)
# =============================================================================================

# ---------------------------------------------------------------------------------------------
# 1. The run lock never follows a link and opens only a regular file
# ---------------------------------------------------------------------------------------------

def _odd_lock(run, kind, victim):
    lock = run / ".lock"
    lock.unlink(missing_ok=True)
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling symlink":
        lock.symlink_to(run / "nowhere")
    elif kind == "directory":
        lock.mkdir()
    elif kind == "fifo":
        os.mkfifo(lock)
    return lock


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "directory", "fifo"])
def test_a_lock_that_is_not_a_regular_file_is_refused_in_one_line_and_nothing_is_written(
        run_dir, tmp_path, capsys, kind):
    run = copy_run(run_dir, tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    _odd_lock(run, kind, victim)
    with pytest.raises(ValueError, match=r"\.lock is a .*not the lock file numddpg makes"):
        RunLock(run).acquire()
    assert cli.main(["train", "--resume", str(run), "--total-steps", "300", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Remove it" in err and "Traceback" not in err
    assert victim.read_text() == "precious\n"               # nothing written through the link
    assert not (run / "nowhere").exists()


@given(text=st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
@settings(max_examples=60, deadline=None)
def test_any_text_in_a_lock_file_is_read_as_a_pid_or_nothing(tmp_path_factory, text):
    from numddpg.files.rundir import holder_pid
    run = tmp_path_factory.mktemp("lock")
    (run / ".lock").write_bytes(text.encode("utf-8", "surrogatepass"))
    pid = holder_pid(run)
    assert pid is None or (isinstance(pid, int) and pid == int(text.strip()))
    RunLock(run).acquire().release()                         # a stale lock file never blocks
    assert holder_pid(run) == os.getpid()


# ---------------------------------------------------------------------------------------------
# 2. An env record chooses no memory: wrappers' kwargs typed and bounded, env arguments plain
# ---------------------------------------------------------------------------------------------

HOSTILE = [10**9, 10**400, -1, 0, 1e308, -1e308, "text", "x" * 300, None, True, [], [1] * 5000,
           {"a": 1}, 2.5]


def stacked_record(**kwargs):
    from numddpg.training.envs import env_record
    env = gym.wrappers.FlattenObservation(
        gym.wrappers.FrameStackObservation(gym.make("Pendulum-v1"), 4))
    record = env_record(env)
    record["kwargs"].update(kwargs)
    return record


def peak_mib(call):
    """``call()``'s result or exception, and the peak of Python's and NumPy's allocations in it."""
    import tracemalloc
    tracemalloc.start()
    try:
        try:
            result = call()
        except Exception as exc:               # noqa: BLE001 -- the caller judges it
            result = exc
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@settings(max_examples=150, deadline=None)
@given(wrapper=st.sampled_from(["RescaleAction", "ClipReward", "RecordEpisodeStatistics",
                                "StickyAction", "FrameStackObservation", "DelayObservation",
                                "TimeAwareObservation", "ReshapeObservation"]),
       key=st.sampled_from(["stack_size", "delay", "buffer_length", "min_action", "max_reward",
                            "repeat_action_probability", "repeat_action_duration", "shape",
                            "padding_type", "flatten", "bogus"]),
       value=st.sampled_from(HOSTILE))
def test_a_record_wrapper_with_any_kwarg_is_refused_in_one_line_or_rebuilt_small(wrapper, key,
                                                                                  value):
    from numddpg.training.envs import make_from_record
    record = stacked_record()
    record["wrappers"].insert(0, {"name": wrapper, "kwargs": {key: value}})
    got, peak = peak_mib(lambda: make_from_record(record))
    assert peak < 100, (wrapper, key, value, peak)
    if isinstance(got, Exception):
        assert isinstance(got, (EnvError, TooLarge)) and "\n" not in str(got), repr(got)
    else:
        got.close()


@pytest.mark.parametrize("value, text", [
    (10**400, "is not a value numddpg rebuilds an env with"),
    ("text", "takes a float there (default 10.0)"),
    (True, "takes a float there"),
    ([1.0] * 10**5, "is not a value numddpg rebuilds an env with"),
])
def test_an_env_argument_of_absurd_size_or_type_is_refused_before_the_env_is_made(value, text):
    from numddpg.training.envs import make_from_record
    with pytest.raises(EnvError, match=None) as info:
        make_from_record(stacked_record(g=value))
    assert text in str(info.value) and "\n" not in str(info.value)


def test_a_frame_stack_of_a_billion_in_a_policy_file_is_one_line_from_eval(run_dir, tmp_path,
                                                                           capsys):
    policy = run_dir / "policy.npz"
    meta = full_record(policy)
    meta["env"] = stacked_record()
    meta["env"]["wrappers"][0]["kwargs"]["stack_size"] = 10**9
    bad = doctored(policy, tmp_path / "policy.npz", meta)
    assert cli.main(["eval", str(bad), "--episodes", "1"]) == 2
    assert "FrameStackObservation(stack_size=1000000000) is refused" in one_line(capsys)


# ---------------------------------------------------------------------------------------------
# 5. Tuning inputs: regular files only, bounded; study records checked like checkpoints
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory"])
def test_a_search_space_that_is_no_regular_file_is_refused_without_reading(kind, tmp_path):
    from numddpg.tools.hpfile import HyperparameterFileError, read_json_object
    path = {"/dev/zero": "/dev/zero", "fifo": str(tmp_path / "fifo"),
            "directory": str(tmp_path)}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    start = time.monotonic()
    with pytest.raises(HyperparameterFileError, match="not a regular file"):
        read_json_object(path, "search space")
    assert time.monotonic() - start < 5


def test_a_config_json_that_is_a_fifo_does_not_hang_a_resume(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "config.json")
    assert cli.main(["train", "--resume", str(run)]) == 2
    assert "named pipe, not a regular file" in one_line(capsys)


def _trial(optuna, state, value=None, **attrs):
    return optuna.trial.create_trial(state=state, value=value, user_attrs=attrs, params={},
                                     distributions={})


@settings(max_examples=80, deadline=None)
@given(field=st.sampled_from(["hyperparameters", "returns", "std"]),
       value=st.sampled_from(FUZZ_VALUES + [float("nan"), {"pi_lr": -1.0}, {"bogus": 1},
                                            {"0": "x"}]))
def test_a_complete_trial_with_any_wrong_record_is_refused_in_one_line(field, value):
    optuna = pytest.importorskip("optuna")
    from numddpg.tools.tune import TuneError, check_trial_record
    attrs = {"hyperparameters": {"pi_lr": 1e-3}, "returns": {"0": -150.0}, "std": 0.0}
    good = _trial(optuna, optuna.trial.TrialState.COMPLETE, -150.0, **attrs)
    settings_ = {"algo": "ddpg", "seeds": [0]}
    check_trial_record(good, settings_, "study")             # the record tune writes passes
    bad = _trial(optuna, optuna.trial.TrialState.COMPLETE, -150.0, **{**attrs, field: value})
    try:
        check_trial_record(bad, settings_, "study")
    except TuneError as exc:
        assert "\n" not in str(exc) and f"trial {bad.number}" in str(exc)
    else:                                                    # only an equally valid record
        assert field == "std" and isinstance(value, (int, float)) and math.isfinite(value)


def test_a_study_with_a_malformed_settings_record_is_refused(tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="s", direction="maximize").set_user_attr(
        "numddpg", "not a record")
    assert cli.main(["tune", "--total-steps", "100", "--trials", "1", "--seeds", "0",
                     "--storage", url, "--study", "s", "--out", str(tmp_path / "o")]) == 2
    assert "holds a settings record numddpg did not write" in one_line(capsys)


@pytest.mark.parametrize("queued", [{"pi_lr": 5.0}, {"batch_size": 10**6}, {"noise": "laser"}])
def test_a_queued_value_outside_the_space_is_not_run(queued):
    optuna = pytest.importorskip("optuna")
    from numddpg.tools.tune import DEFAULT_SPACES, TrialFailed, check_space, suggest
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(queued, skip_if_exists=False)
    trial = study.ask()
    space = check_space(DEFAULT_SPACES["ddpg"], "ddpg")
    with pytest.raises(TrialFailed, match="queued value"):
        suggest(trial, space, "gaussian")


# ---------------------------------------------------------------------------------------------
# 6 and 7. Values the loop cannot mean are refused; messages name what was done and the path
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, text", [
    (["train", "--env", ""], "expected a gymnasium id such as Pendulum-v1, got ''"),
    (["eval", "run", "--env", "  "], "expected a gymnasium id"),
    (["train", "--total-steps", "0"], "expected a whole number >= 1, got '0'"),
    (["train", "--resume", "run", "--total-steps", "-1"], "expected a whole number >= 1"),
])
def test_values_the_loop_cannot_mean_are_argument_errors(argv, text, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2 and text in one_line(capsys)


@pytest.mark.parametrize("flag", ["--q-lr", "--pi-lr", "--gamma", "--act-noise"])
def test_a_negative_number_reaches_the_flags_own_check(flag, capsys):
    assert cli.main(["train", flag, "-1e-3", "--total-steps", "10"]) == 2
    assert f"{flag[2:].replace('-', '_')} must" in one_line(capsys)


def test_eval_names_the_env_it_evaluated_not_an_edited_id(run_dir, tmp_path, capsys):
    meta = full_record(run_dir / "policy.npz")
    meta["env_id"] = "CartPole-v1"
    bad = doctored(run_dir / "policy.npz", tmp_path / "policy.npz", meta)
    assert cli.main(["eval", str(bad), "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Pendulum-v1 ") and "CartPole" not in out


def test_render_human_without_a_display_is_an_environment_error(run_dir, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert cli.main(["eval", str(run_dir), "--render", "human"]) == 1
    assert "--render human needs a screen" in one_line(capsys)


@pytest.mark.parametrize("err, code, text", [
    (28, 1, "/data/run/checkpoint.npz: No space left on device (free some space"),
    (36, 2, "File name too long (choose a shorter name)"),
    (13, 1, "Permission denied (choose a place you may write to"),
])
def test_a_bare_os_error_names_the_path_and_what_to_do(err, code, text, monkeypatch, capsys):
    def fail(args):
        raise OSError(err, os.strerror(err), "/data/run/checkpoint.npz")
    monkeypatch.setattr(cli, "run_export", fail)
    assert cli.main(["export", "a", "b"]) == code
    line = one_line(capsys)
    assert text in line and "[Errno" not in line


class _BoxEnv(gym.Env):
    """A 1-D env whose action Box is given (its bounds and dtype are what the test is about)."""
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)

    def __init__(self, action_space):
        self.action_space = action_space

    def reset(self, seed=None, options=None):
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize("space, text", [
    (gym.spaces.Box(-1e308, 1e308, (2,), np.float64), "too wide for float32 actions"),
    (gym.spaces.Box(-5, 5, (2,), np.int64), "int64 actions"),
])
def test_an_action_box_the_actor_cannot_mean_is_refused(space, text):
    with pytest.raises(EnvError, match=text):
        DDPG(_BoxEnv(space), log=False, **TINY)


def test_an_agent_file_with_bounds_of_1e308_is_refused(saved_files, tmp_path):
    path, load = saved_files["agent"]
    meta = full_record(path)
    meta["config"].update(act_low=[-1e308], act_high=[1e308])
    with pytest.raises(CheckpointError, match="too wide"):
        load(doctored(path, tmp_path / "bad.npz", meta))


@pytest.mark.parametrize("flag", [7.0, -1.0, 0.5])
def test_a_replay_done_flag_other_than_0_or_1_is_refused_and_the_buffer_kept(tmp_path, flag):
    from numddpg.sb3 import DDPG as SB3DDPG
    model = SB3DDPG("MlpPolicy", "Pendulum-v1", buffer_size=1000, learning_starts=5,
                    batch_size=4, policy_kwargs=dict(net_arch=[8]), seed=0)
    model.learn(30)
    model.save_replay_buffer(tmp_path / "buf")
    meta, arrays = read_checkpoint(tmp_path / "buf.npz")
    arrays["buffer.done"] = arrays["buffer.done"].copy()
    arrays["buffer.done"][5] = flag
    for key in ("format", "format_version", "numddpg_version", "arrays"):
        meta.pop(key)
    write_checkpoint(tmp_path / "bad.npz", arrays, meta)
    buffer = model.replay_buffer
    before = buffer.obs.copy(), buffer.size
    with pytest.raises(CheckpointError, match=f"done flag at row 5 is {flag!r}, not 0 or 1"):
        model.load_replay_buffer(tmp_path / "bad.npz")
    assert np.array_equal(buffer.obs, before[0]) and buffer.size == before[1]


# ---------------------------------------------------------------------------------------------
# 4. Loading a model to act does not take its run's replay buffer
# ---------------------------------------------------------------------------------------------

def _rss_mib():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's VmRSS")
def test_a_small_file_declaring_a_huge_buffer_loads_without_taking_its_memory(tmp_path):
    """An ~8 kB checkpoint of a run with replay_size 2e7 (~640 MB of rows for Pendulum):
    the rows are pages the OS gives only when written, and a load writes none."""
    DDPG("Pendulum-v1", log=False, **dict(TINY, replay_size=20_000_000)).save(
        tmp_path / "big.npz", include_buffer=False)
    assert os.path.getsize(tmp_path / "big.npz") < 1 << 20
    before = _rss_mib()
    model = DDPG.load(tmp_path / "big.npz")
    assert _rss_mib() - before < 100
    assert model.buffer.max_size == 20_000_000 and model.buffer.size == 0


# ---------------------------------------------------------------------------------------------
# 3. A file's vector record starts no envs and no processes
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vector_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("vec") / "run"
    env = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    DDPG(env, run_dir=run, **dict(TINY, steps_per_epoch=100)).learn(200, progress_bar=False)
    return run


@pytest.mark.parametrize("n", [48, 1024])
def test_a_vector_record_asking_for_async_envs_is_shown_not_obeyed(vector_run, tmp_path, n):
    meta = full_record(vector_run / "checkpoint.npz")
    meta["vector"] = {"num_envs": n, "mode": "async"}
    bad = doctored(vector_run / "checkpoint.npz", tmp_path / "bad.npz", meta)
    import multiprocessing
    before = len(multiprocessing.active_children())
    model = DDPG.load(bad)                     # one plain env, whatever the file says
    assert model.n_envs == 0 and len(multiprocessing.active_children()) == before


def test_a_vector_run_resumes_only_on_as_many_envs_as_the_user_asks(vector_run, capsys):
    assert cli.main(["train", "--resume", str(vector_run), "--total-steps", "300"]) == 2
    line = one_line(capsys)
    assert "was trained on 2 envs (sync)" in line and "resume it with --num-envs 2" in line
    assert cli.main(["train", "--resume", str(vector_run), "--total-steps", "300",
                     "--num-envs", "3"]) == 2
    assert "a resume on 3 would not continue it exactly: give --num-envs 2" in one_line(capsys)
    model = OffPolicyAlgorithm.resume(vector_run, total_steps=300, progress_bar=False,
                                      num_envs=2)
    assert model.n_envs == 2 and model.t == 300


def test_a_resume_below_the_steps_run_or_of_a_run_without_checkpoints_is_refused(run_dir,
                                                                                tmp_path,
                                                                                capsys):
    assert cli.main(["train", "--resume", str(run_dir), "--total-steps", "100"]) == 2
    assert "has run 200 env steps; total_steps 100 is fewer" in one_line(capsys)
    run = tmp_path / "never"
    DDPG("Pendulum-v1", run_dir=run, checkpoint_every=0, **TINY).learn(200, progress_bar=False)
    assert not (run / "checkpoint.npz").exists()
    assert cli.main(["train", "--resume", str(run), "--total-steps", "400"]) == 2
    assert "checkpoint_every 0 (no checkpoints), so it cannot be resumed" in one_line(capsys)


def test_a_checkpoint_without_a_preset_loads_and_counts_beyond_2_53_are_refused(run_dir,
                                                                              tmp_path):
    meta = full_record(run_dir / "checkpoint.npz")
    del meta["preset"]
    assert DDPG.load(doctored(run_dir / "checkpoint.npz", tmp_path / "a.npz", meta)).preset_name \
        is None
    meta = full_record(run_dir / "checkpoint.npz")
    meta["loop"]["t"] = 2**62
    with pytest.raises(CheckpointError, match=r"loop.t=4611686018427387904 must be an integer "
                                              r"from 0 to 2\*\*53"):
        DDPG.load(doctored(run_dir / "checkpoint.npz", tmp_path / "b.npz", meta))


def test_agent_counters_beyond_2_53_are_refused(tmp_path):
    from numddpg.engine.agents import DDPGAgent, load_agent, save_agent
    agent = DDPGAgent(3, 1, -2.0, 2.0, hidden_sizes=(4,), seed=0)
    agent.pi_optim.t = 2**62
    path = save_agent(tmp_path / "agent.npz", agent)
    with pytest.raises(CheckpointError, match="each must lie in 0..2"):
        load_agent(path)


def _vector_stepping(edit):
    class Edited(gym.vector.VectorWrapper):
        def step(self, actions):
            return edit(*self.env.step(actions))
    return Edited(gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync"))


@pytest.mark.parametrize("edit, text", [
    (lambda o, r, te, tr, i: (np.hstack([o, o[:, :1]]), r, te, tr, i), r"shape \(2, 4\)"),
    (lambda o, r, te, tr, i: (o, r, np.zeros(3, bool), tr, i), "returned terminations"),
    (lambda o, r, te, tr, i: (o, r, False, tr, i), "returned terminations False"),
    (lambda o, r, te, tr, i: (o, r, te, np.zeros(1, bool), i), "returned truncations"),
    (lambda o, r, te, tr, i: (o, r, np.array([0.5, 0.0]), tr, i), "returned terminations"),
    (lambda o, r, te, tr, i: (o, r, te, tr, []), "returned infos list"),
])
def test_a_vector_sub_env_step_of_the_wrong_shape_is_one_clear_line(edit, text):
    with pytest.raises(EnvFailure, match=text) as info:
        DDPG(_vector_stepping(edit), test_env=gym.make("Pendulum-v1"), log=False,
             **TINY).learn(10, progress_bar=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("low, high", [(-1e308, 1e308), (-2.0, 3.0)])
def test_a_policy_file_whose_bounds_are_not_its_box_is_refused(saved_files, tmp_path, low,
                                                               high):
    path, load = saved_files["policy"]
    meta, arrays = read_checkpoint(path)
    for key in ENVELOPE:
        meta.pop(key)
    arrays = dict(arrays, low=np.array([low]), high=np.array([high]))
    write_checkpoint(tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="is not the one its mid"):
        load(tmp_path / "bad.npz")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 1024), mode=st.sampled_from(["sync", "async"]))
def test_any_vector_record_loads_onto_one_env_and_starts_nothing(vector_run, tmp_path_factory,
                                                                 n, mode):
    import multiprocessing
    meta = full_record(vector_run / "checkpoint.npz")
    meta["vector"] = {"num_envs": n, "mode": mode}
    bad = doctored(vector_run / "checkpoint.npz", tmp_path_factory.mktemp("v") / "c.npz", meta)
    before = len(multiprocessing.active_children())
    assert DDPG.load(bad).n_envs == 0
    assert len(multiprocessing.active_children()) == before


@settings(max_examples=40, deadline=None,    # (capsys: one_line reads and empties it each time)
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag_value=st.one_of(
    st.tuples(st.just("--total-steps"), st.integers(-10**12, 0).map(str)),
    st.tuples(st.sampled_from(["--q-lr", "--pi-lr"]),
              st.floats(-1e30, 0.0).map(lambda v: f"{v:.3e}")),
    st.tuples(st.sampled_from(["--gamma", "--polyak"]),
              st.floats(1.0001, 1e6).map(lambda v: f"{v:.6g}")),
    st.tuples(st.just("--env"), st.text(" \t", max_size=3))))
def test_a_drawn_value_the_loop_cannot_mean_is_one_line_and_exit_2(flag_value, capsys):
    flag, value = flag_value
    try:
        code = cli.main(["train", flag, value, "--total-steps", "10"] if flag != "--total-steps"
                        else ["train", flag, value])
    except SystemExit as exc:                  # argparse's own refusal
        code = exc.code
    assert code == 2
    one_line(capsys)
