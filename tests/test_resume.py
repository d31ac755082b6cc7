"""Exact resume: a run killed with SIGKILL and resumed ends bit-identical to one never
interrupted; model.save / DDPG.load; the NaN guard; damaged run checkpoints.

Every comparison of parameters is exact (np.array_equal on every array of the agent's state,
Adam moments, step counts and generator state included): the promise is bit-identity on the
same machine with the same seed, so a tolerance would hide exactly the bugs this file hunts
(a generator advanced once too often, an epoch boundary shifted by a resume, a lost update).
progress.csv rows are compared on every column except SPS and Time (wall-clock).
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from numddpg.files import checkpoint as ck
from numddpg.engine.agents import agent_from_arrays
from numddpg.training.algorithms import (ALGORITHMS, CHECKPOINT_FILE, DDPG, STATS_ARRAY, NonFiniteError,
                                         OffPolicyAlgorithm, read_run_checkpoint)
from numddpg.files.checkpoint import CheckpointError
from numddpg.files.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
CLOCK_COLUMNS = ("SPS", "Time")

# A short Pendulum run (200-step episodes) with tiny nets: updates from step 200 in bursts of
# 25, an epoch (with one test episode) every 400 steps, a checkpoint every 200 steps.
HP = dict(hidden_sizes=(8,), steps_per_epoch=400, start_steps=200, update_after=200,
          update_every=25, batch_size=16, replay_size=10_000, num_test_episodes=1,
          checkpoint_every=200, seed=7)


def same_state(a, b):
    """True iff two agents' state dicts are equal bit for bit (names, dtypes, values)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sorted(sa) == sorted(sb) and all(
        sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]) for k in sa)


def progress_rows(run_dir):
    with open(Path(run_dir) / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in CLOCK_COLUMNS}
                for row in csv.DictReader(f)]


def final_state(run_dir):
    """(agent from checkpoint.npz, meta, policy params) of a finished run."""
    meta, arrays = read_run_checkpoint(Path(run_dir) / CHECKPOINT_FILE)
    agent = agent_from_arrays(meta["config"], arrays, "final", "agent.")
    return agent, meta, load_policy(run_dir).params


# ---------------------------------------------------------------------------------------------
# The promise, with real processes and a real SIGKILL
# ---------------------------------------------------------------------------------------------

TOTAL = 8000                                   # ~1.5 s of training at ~6k steps/s
TRAIN = [sys.executable, "-m", "numddpg", "train", "--quiet", "--no-baseline",
         "--total-steps", str(TOTAL), "--hidden", "8", "--steps-per-epoch", "400",
         "--start-steps", "200", "--update-after", "200", "--update-every", "25",
         "--batch-size", "16", "--replay-size", "10000", "--num-test-episodes", "1",
         "--checkpoint-every", "200", "--seed", "7"]


def _checkpoint_step(run_dir):
    try:
        return ck.read_meta(Path(run_dir) / CHECKPOINT_FILE)["loop"]["t"]
    except CheckpointError:                    # not written yet
        return None


def _start_and_kill(cmd, run_dir, delay, after_step):
    """Start ``cmd``, wait until its checkpoint is past ``after_step``, wait ``delay`` seconds
    more, SIGKILL it; returns the step of the checkpoint it left (asserting it was cut short)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while True:
            t = _checkpoint_step(run_dir)
            if t is not None and t > after_step:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared within 90 s"
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    t = _checkpoint_step(run_dir)
    assert t is not None and t < TOTAL, f"the run finished (t={t}) before it was killed"
    return t


def test_sigkill_and_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    """Reference run; then the same run killed twice at random moments (each time after a
    checkpoint past the last one, plus 0-0.15 s, i.e. up to ~900 steps later: inside an
    episode, an update burst, an epoch's test episode or a checkpoint write) and resumed each
    time.  Final parameters, Adam state,
    generators, counters, policy.npz and progress.csv (less clock columns) must be identical."""
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    done = subprocess.run(TRAIN + ["--out", str(ref)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr

    delays = np.random.default_rng().uniform(0.0, 0.15, size=2)   # arbitrary moments, by design
    t1 = _start_and_kill(TRAIN + ["--out", str(cut)], cut, delays[0], after_step=0)
    resume = [sys.executable, "-m", "numddpg", "train", "--quiet", "--no-baseline",
              "--resume", str(cut)]
    t2 = _start_and_kill(resume, cut, delays[1], after_step=t1)
    done = subprocess.run(resume, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    print(f"killed after checkpoints at steps {t1} and {t2} (+{delays.round(3)} s)")

    a_ref, meta_ref, pol_ref = final_state(ref)
    a_cut, meta_cut, pol_cut = final_state(cut)
    assert meta_cut["loop"]["t"] == meta_ref["loop"]["t"] == TOTAL
    assert same_state(a_ref, a_cut)
    assert meta_cut["rng"] == meta_ref["rng"]
    assert np.array_equal(pol_ref, pol_cut)
    _, arr_ref = read_run_checkpoint(ref / CHECKPOINT_FILE)
    _, arr_cut = read_run_checkpoint(cut / CHECKPOINT_FILE)
    for name in arr_ref:                       # buffer, noise, epoch accumulators too
        assert np.array_equal(arr_ref[name], arr_cut[name], equal_nan=True), name
    rows = progress_rows(cut)
    assert [int(r["Epoch"]) for r in rows] == list(range(1, TOTAL // 400 + 1))   # no duplicates
    assert rows == progress_rows(ref)
    assert not [p for p in cut.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------
# In-process: save/load, resume, interruption at chosen points
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["ddpg", "td3"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("noise", ["gaussian", "ou"])
def test_save_load_at_an_episode_boundary_continues_identically(tmp_path, algo, dtype, noise):
    cls = ALGORITHMS[algo]
    a = cls("Pendulum-v1", log=False, **dict(HP, dtype=dtype, noise=noise))
    a.learn(600, progress_bar=False)            # 600 = 3 Pendulum episodes: a boundary
    path = a.save(tmp_path / "model.npz")
    b = cls.load(path)
    assert same_state(a.agent, b.agent) and (b.t, b.episodes, b.epoch) == (600, 3, 2)
    assert b.agent.dtype == np.dtype(dtype) and b.hyperparameters == a.hyperparameters
    assert b.rng.bit_generator.state == a.rng.bit_generator.state
    assert b.buffer.size == a.buffer.size == 600 and b.buffer.ptr == a.buffer.ptr
    assert np.array_equal(b.buffer.obs, a.buffer.obs)
    assert np.array_equal(b.buffer.rng_state, a.buffer.rng_state)
    assert type(OffPolicyAlgorithm.load(path)) is cls
    a.learn(700, progress_bar=False)
    b.learn(700, progress_bar=False)
    assert same_state(a.agent, b.agent)
    assert np.array_equal(a.buffer.obs2, b.buffer.obs2)


def test_save_without_buffer_says_what_it_costs(tmp_path):
    a = DDPG("Pendulum-v1", log=False, **HP)
    a.learn(400, progress_bar=False)
    small = a.save(tmp_path / "small.npz", include_buffer=False)
    assert small.stat().st_size < a.save(tmp_path / "full.npz").stat().st_size / 2
    with pytest.warns(RuntimeWarning, match="empty buffer"):
        b = DDPG.load(small)
    assert b.buffer.size == 0 and same_state(a.agent, b.agent)
    b.learn(300, progress_bar=False)            # trains on (from an almost empty buffer)
    assert b.buffer.size == 300


@pytest.mark.parametrize("stop_at", [1, 201, 399, 450, 800])
def test_interrupted_anywhere_then_resumed_is_identical(tmp_path, stop_at):
    """KeyboardInterrupt at env step ``stop_at`` (mid-episode, right after a checkpoint, right
    before an epoch end, ...), then resume(): identical to the uninterrupted run."""
    ref = DDPG("Pendulum-v1", run_dir=tmp_path / "ref", **HP)
    ref.learn(1000, progress_bar=False)

    cut = DDPG("Pendulum-v1", run_dir=tmp_path / "cut", **HP)
    step = cut.env.step

    def step_then_maybe_stop(action):
        if cut.t == stop_at:
            raise KeyboardInterrupt
        return step(action)

    cut.env.step = step_then_maybe_stop
    with pytest.raises(KeyboardInterrupt):
        cut.learn(1000, progress_bar=False)
    saved_at = ck.read_meta(tmp_path / "cut" / CHECKPOINT_FILE)["loop"]["t"]
    assert saved_at <= stop_at and saved_at % 200 == 0
    resumed = DDPG.resume(tmp_path / "cut", progress_bar=False)
    assert resumed.t == 1000
    assert same_state(ref.agent, resumed.agent)
    assert progress_rows(tmp_path / "cut") == progress_rows(tmp_path / "ref")


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    m = DDPG("Pendulum-v1", run_dir=tmp_path / "run", **HP)
    m.learn(800, progress_bar=False)
    before = (tmp_path / "run" / "progress.csv").read_bytes()
    again = DDPG.resume(tmp_path / "run", progress_bar=False)
    assert again.t == 800 and same_state(m.agent, again.agent)
    assert (tmp_path / "run" / "progress.csv").read_bytes() == before


def test_resume_drops_rows_and_partial_lines_written_after_the_checkpoint(tmp_path):
    m = DDPG("Pendulum-v1", run_dir=tmp_path / "run", **dict(HP, checkpoint_every=10**6))
    m.learn(800, progress_bar=False)            # checkpoints only at t=0 and the end
    run = tmp_path / "run"
    first = ck.read_meta(run / CHECKPOINT_FILE)
    assert first["loop"]["t"] == 800 and first["logger"]["progress_rows"] == 2
    # Rewind: an early checkpoint plus a progress.csv with later rows and a torn last line.
    early = DDPG("Pendulum-v1", log=False, **HP)
    early.learn(400, progress_bar=False)
    early._csv = object()                       # a logged model: progress_rows = epoch = 1
    early.save(run / CHECKPOINT_FILE)
    with open(run / "progress.csv", "ab") as f:
        f.write(b"3,1200,-1.0,0.0")
    resumed = DDPG.resume(run, progress_bar=False)
    assert [int(r["Epoch"]) for r in progress_rows(run)] == [1, 2]
    assert same_state(m.agent, resumed.agent)


def test_checkpoint_every_zero_writes_none(tmp_path):
    m = DDPG("Pendulum-v1", run_dir=tmp_path / "run", **dict(HP, checkpoint_every=0))
    m.learn(400, progress_bar=False)
    assert not (tmp_path / "run" / CHECKPOINT_FILE).exists()
    assert (tmp_path / "run" / "policy.npz").exists()


def test_cli_resume_refuses_other_settings(tmp_path, capsys):
    from numddpg.tools import cli
    assert cli.main(["train", "--resume", str(tmp_path), "--hidden", "4"]) == 2
    assert "leave out --hidden-sizes" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path), "--quiet"]) == 2
    assert "is not a numddpg run directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The NaN guard
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("poison", ["loss", "param", "moment"])
def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, poison):
    m = DDPG("Pendulum-v1", run_dir=tmp_path / "run", **HP)
    burst = m.agent.update_burst

    def poisoned_burst(*args):
        stats = burst(*args)
        if m.t >= 550:                           # after the checkpoint at step 400
            if poison == "loss":
                stats[3, 0] = np.inf
            elif poison == "param":
                m.agent.critic.params[5] = np.nan
            else:
                m.agent.pi_optim.v[2] = np.nan
        return stats

    m.agent.update_burst = poisoned_burst
    with pytest.raises(NonFiniteError) as err:
        m.learn(1000, progress_bar=False)
    msg = str(err.value)
    # A bad loss is caught in its own burst.  A weight or Adam moment poisoned after a burst
    # makes the next burst's losses non-finite, and the guard stops there (the full array scan
    # runs every FULL_SCAN_UPDATES updates and before checkpoints, not after every burst).
    assert {"loss": "env step 550", "param": "env step 575", "moment": "env step 575"}[poison] in msg
    assert {"loss": "loss_q = inf (update 4 of the 25",
            "param": "loss_q = nan (update 1 of the 25",
            "moment": "= nan (update 2 of the 25"}[poison] in msg
    assert "env step 400), is kept" in msg
    kept = DDPG.load(tmp_path / "run" / CHECKPOINT_FILE)     # loads: every array finite
    assert kept.t == 400
    assert np.all(np.isfinite(load_policy(tmp_path / "run").params))


def test_nan_guard_allows_td3_critic_only_updates():
    """TD3 reports loss_pi = NaN on updates without an actor step; that is not divergence."""
    m = ALGORITHMS["td3"]("Pendulum-v1", log=False, **HP)
    burst, seen = m.agent.update_burst, []
    m.agent.update_burst = lambda *args: seen.append(burst(*args)) or seen[-1]
    m.learn(400, progress_bar=False)            # raises NonFiniteError if the guard is wrong
    loss_pi = np.concatenate(seen)[:, 1]       # 9 bursts of 25: updates 1, 3, 5, ... are
    assert np.isnan(loss_pi).sum() == (len(loss_pi) + 1) // 2   # critic-only (policy_delay 2)


def test_td3_with_ou_noise_interrupted_and_resumed_is_identical(tmp_path):
    hp = dict(HP, noise="ou")
    ref = ALGORITHMS["td3"]("Pendulum-v1", run_dir=tmp_path / "ref", **hp)
    ref.learn(1000, progress_bar=False)
    cut = ALGORITHMS["td3"]("Pendulum-v1", run_dir=tmp_path / "cut", **hp)
    step = cut.env.step

    def step_then_maybe_stop(action):
        if cut.t == 530:
            raise KeyboardInterrupt
        return step(action)

    cut.env.step = step_then_maybe_stop
    with pytest.raises(KeyboardInterrupt):
        cut.learn(1000, progress_bar=False)
    resumed = OffPolicyAlgorithm.resume(tmp_path / "cut", progress_bar=False)
    assert type(resumed).__name__ == "TD3" and resumed.t == 1000
    assert same_state(ref.agent, resumed.agent)
    assert progress_rows(tmp_path / "cut") == progress_rows(tmp_path / "ref")


def test_writer_refuses_nan_so_a_good_file_is_never_replaced_by_a_bad_one(tmp_path):
    m = DDPG("Pendulum-v1", log=False, **HP)
    path = m.save(tmp_path / "good.npz")
    before = path.read_bytes()
    m.agent.actor.params[0] = np.nan
    with pytest.raises(CheckpointError, match="refusing to write array 'agent.actor'"):
        m.save(path)
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# Damaged or mismatched run checkpoints
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory):
    m = DDPG("Pendulum-v1", log=False, **HP)
    m.learn(400, progress_bar=False)
    return m.save(tmp_path_factory.mktemp("alg") / "model.npz")


def _edited(src, dst, edit):
    """A copy of the checkpoint at src with its metadata passed through ``edit``."""
    import io
    import zipfile
    with zipfile.ZipFile(src) as zf:
        items = [(i.filename, zf.read(i)) for i in zf.infolist()]
    raw = np.lib.format.read_array(io.BytesIO(dict(items)["__meta__.npy"]))
    meta = json.loads(raw.tobytes())
    edit(meta)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in items:
            zf.writestr(name, buf.getvalue() if name == "__meta__.npy" else data)
    return dst


EDITS = {
    "buffer size": (lambda m: m["buffer"].update(size=m["buffer"]["size"] + 1), "buffer"),
    "ring": (lambda m: m["buffer"].update(ptr=3), "ring buffer"),
    "negative t": (lambda m: m["loop"].update(t=-1), "loop.t"),
    "epoch start": (lambda m: m["loop"].update(epoch_t0=m["loop"]["t"] + 1), "epoch_t0"),
    "rng": (lambda m: m["rng"].update(bit_generator="MT19937"), "generator"),
    "rng state": (lambda m: m["rng"]["state"].update(state="x"), "generator"),
    "spaces": (lambda m: m["spaces"].update(obs_dim=4), "spaces"),
    "hyperparameters": (lambda m: m["hyperparameters"].update(batch_size=0), "rebuild"),
    "agent config": (lambda m: m["hyperparameters"].update(gamma=0.5), "agent config"),
    "replay size": (lambda m: m["hyperparameters"].update(replay_size=5000), "max_size"),
    "algo": (lambda m: m.update(algo="td3"), "algo"),
    "seed and obs": (lambda m: m["loop"].update(episode_seed=None), "does not have"),
    "logger": (lambda m: m["logger"].update(progress_rows=-2), "progress_rows"),
    "kind": (lambda m: m.update(kind="agent"), "'algorithm' checkpoint needed"),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_doctored_run_checkpoints_raise_checkpoint_error(run_checkpoint, tmp_path, name):
    edit, pattern = EDITS[name]
    bad = _edited(run_checkpoint, tmp_path / "bad.npz", edit)
    with pytest.raises(CheckpointError, match=pattern):
        DDPG.load(bad)


def test_truncated_run_checkpoint_and_wrong_class(run_checkpoint, tmp_path):
    data = run_checkpoint.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            DDPG.load(tmp_path / "cut.npz")

    class Other(DDPG):
        algo = "other"

    with pytest.raises(CheckpointError, match="'ddpg' checkpoint"):
        Other.load(run_checkpoint)
    assert os.path.exists(run_checkpoint)


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_a_chunked_run_keeps_its_chunks_through_save_load_and_config(tmp_path, algo):
    """chunks=None (calibrated) or 2: the loaded model updates with the saved agent's chunks,
    whatever calibration would say now, so it continues bit-identically; config.json says
    which chunks the run used and where the value came from."""
    cls = ALGORITHMS[algo]
    a = cls("Pendulum-v1", run_dir=tmp_path / "run", **dict(HP, batch_size=64, chunks=2))
    a.learn(600, progress_bar=False)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["threads"]["chunks"] == 2 and cfg["hyperparameters"]["chunks"] == 2
    b = cls.load(a.save(tmp_path / "model.npz"))
    assert b.agent.chunks == 2 and b.chunks_used == 2
    b.agent.threads = 1                        # threads never change a bit
    a.learn(700, progress_bar=False)
    b.learn(700, progress_bar=False)
    assert same_state(a.agent, b.agent)


def test_a_checkpoint_from_before_chunks_loads_on_one_chunk(tmp_path):
    """An agent config without "chunks" (files written before it existed) is the serial
    update; a doctored one is refused before anything is allocated."""
    a = DDPG("Pendulum-v1", log=False, **HP)
    a.learn(400, progress_bar=False)
    path = a.save(tmp_path / "model.npz")
    meta, arrays = read_run_checkpoint(path)
    del meta["config"]["chunks"]
    meta["hyperparameters"].pop("chunks")
    old = tmp_path / "old.npz"
    ck.write_checkpoint(old, arrays, meta, allow_nonfinite=(STATS_ARRAY,))
    assert DDPG.load(old).agent.chunks == 1
    for bad in (0, -1, 10**9, 2.5, True, "2", None):
        meta["config"]["chunks"] = bad
        ck.write_checkpoint(old, arrays, meta, allow_nonfinite=(STATS_ARRAY,))
        with pytest.raises(CheckpointError, match="chunks"):
            DDPG.load(old)
    # the hyperparameters' copy never decides: one that disagrees with the agent config's
    # (checked) value is refused, so that a load is never a different run than the file says
    meta["config"]["chunks"] = 1
    meta["hyperparameters"]["chunks"] = 10**9
    ck.write_checkpoint(old, arrays, meta, allow_nonfinite=(STATS_ARRAY,))
    with pytest.raises(CheckpointError, match="hyperparameters.chunks 1000000000 differs"):
        DDPG.load(old)


def test_adam_options_are_saved_loaded_and_checked(tmp_path):
    """Weight decay, betas and eps are hyperparameters and agent config: a loaded model
    continues bit-identically; a file without them (older) has Adam's defaults; a doctored
    value is refused naming it."""
    options = dict(weight_decay=0.01, decoupled_weight_decay=False, adam_beta1=0.8,
                   adam_beta2=0.99, adam_eps=1e-6)
    a = ALGORITHMS["td3"]("Pendulum-v1", log=False, **dict(HP, **options))
    a.learn(400, progress_bar=False)
    path = a.save(tmp_path / "model.npz")
    b = ALGORITHMS["td3"].load(path)
    assert {k: b.hyperparameters[k] for k in options} == options
    assert {k: b.agent.config()[k] for k in options} == options
    a.learn(500, progress_bar=False)
    b.learn(500, progress_bar=False)
    assert same_state(a.agent, b.agent)
    meta, arrays = read_run_checkpoint(path)
    old = tmp_path / "old.npz"
    for key in options:
        del meta["config"][key]
        del meta["hyperparameters"][key]
    ck.write_checkpoint(old, arrays, meta, allow_nonfinite=(STATS_ARRAY,))
    c = ALGORITHMS["td3"].load(old)
    assert (c.weight_decay, c.adam_beta1, c.adam_beta2, c.adam_eps) == (0.0, 0.9, 0.999, 1e-8)
    meta["config"]["adam_beta1"] = meta["hyperparameters"]["adam_beta1"] = 1.0
    ck.write_checkpoint(old, arrays, meta, allow_nonfinite=(STATS_ARRAY,))
    with pytest.raises(CheckpointError, match=r"adam_beta1 must be a finite number in "
                                              r"\[0.0, 1.0\), got 1.0"):
        ALGORITHMS["td3"].load(old)
