"""numddpg.files.runlog: monitor.csv in SB3 Monitor's format and TensorBoard scalars under SB3's names.

RunLog is driven here by synthetic calls (no training), the way the loop calls it; the files are
read back as their readers read them: monitor.csv as SB3's ``load_results`` does (a '#' JSON
line, then a CSV), the event files with TensorBoard's own EventAccumulator (which also applies
a resumed writer's purge_step).  The TensorBoard tests are skipped without tensorboardX (the
extra numddpg[tensorboard]) or tensorboard (the reader).
"""
import csv
import io
import json
import math
import sys
import time
import tracemalloc

import numpy as np
import pytest

from numddpg.files.runlog import (MONITOR_FILE, MissingExtra, RunLog, check_tensorboard_args,
                                  latest_run_id)

NAN = math.nan


def read_monitor(path):
    """(header dict, rows as lists of strings), read the way SB3's load_results reads."""
    with open(path, newline="") as f:
        first = f.readline()
        assert first[0] == "#"
        header = json.loads(first[1:])
        rows = list(csv.reader(io.StringIO(f.read())))
    assert rows[0] == ["r", "l", "t"]
    return header, rows[1:]


def tb_scalars(folder):
    """{tag: [(step, value), ...]} of the event files in ``folder``, as TensorBoard shows them."""
    pytest.importorskip("tensorboard", reason="reading event files back needs tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})    # 0: keep every point
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def values(points):
    # TensorBoard stores a scalar as a float32 (Summary.Value.simple_value): 6 digits survive
    return [(step, pytest.approx(v, rel=1e-6)) for step, v in points]


def stats(*rows):
    """An update_burst statistics array (K, 4): loss_q, loss_pi, q_mean, q_std per update."""
    return np.array([[q, pi, 0.5, 0.1] for q, pi in rows], dtype=np.float64)


# -- monitor.csv ------------------------------------------------------------------------------

def test_monitor_csv_is_sb3_monitor_format(tmp_path):
    before = time.time()
    log = RunLog(tmp_path, env_id="Pendulum-v1")
    log.on_episode(-1185.4128734, 200, 200)
    log.on_episode(np.float64(3.0), np.int64(7), 207)     # the loop's numpy scalars
    log.close()
    after = time.time()
    text = (tmp_path / MONITOR_FILE).read_text()
    first, columns, row1, row2, end = text.split("\n")
    assert end == "" and columns == "r,l,t"
    header = json.loads(first[1:])
    assert first[0] == "#" and list(header) == ["t_start", "env_id"]
    assert header["env_id"] == "Pendulum-v1" and before <= header["t_start"] <= after
    r, l, t = row1.split(",")
    assert (r, l) == ("-1185.412873", "200")              # rounded to 6 decimals, as SB3
    assert row2.split(",")[:2] == ["3.0", "7"]
    # without elapsed, t is wall-clock seconds since t_start (SB3's): within this test's span
    times = [float(row.split(",")[2]) for row in (row1, row2)]
    assert 0 <= times[0] <= times[1] <= after - header["t_start"] + 1e-6
    _, rows = read_monitor(tmp_path / MONITOR_FILE)
    assert [row[:2] for row in rows] == [["-1185.412873", "200"], ["3.0", "7"]]


def test_monitor_t_counts_on_from_elapsed(tmp_path):
    started = time.perf_counter()
    with RunLog(tmp_path, elapsed=1000.25) as log:
        log.on_episode(1.0, 1, 1)
    spent = time.perf_counter() - started
    _, rows = read_monitor(tmp_path / MONITOR_FILE)
    assert 1000.25 <= float(rows[0][2]) <= 1000.25 + spent + 1e-6


def test_monitor_rows_are_flushed_one_by_one(tmp_path):
    log = RunLog(tmp_path)
    log.on_episode(2.5, 4, 4)
    _, rows = read_monitor(tmp_path / MONITOR_FILE)        # read while the file is still open
    assert [row[:2] for row in rows] == [["2.5", "4"]]
    log.sync()
    log.close()
    log.close()                                            # idempotent


def write_run(run_dir, returns, **kw):
    run_dir.mkdir(exist_ok=True)
    with RunLog(run_dir, env_id="Pendulum-v1", **kw) as log:
        for i, r in enumerate(returns):
            log.on_episode(r, 10, 10 * (i + 1))


def test_resume_keeps_the_checkpointed_rows_and_appends(tmp_path):
    write_run(tmp_path, [1.0, 2.0, 3.0, 4.0, 5.0])
    path = tmp_path / MONITOR_FILE
    with open(path, "a") as f:
        f.write("6.5,1")                                   # a row cut short by a kill
    first_line = path.read_text().split("\n")[0]
    # the checkpoint counted 3 episodes: rows 4 and 5 (and the cut one) were written after it
    with RunLog(tmp_path, env_id="Pendulum-v1", episodes=3, t=30, elapsed=50.0) as log:
        assert log.episodes == 3
        log.on_episode(40.0, 10, 40)
    text = path.read_text()
    assert text.split("\n")[0] == first_line               # the run's header, t_start kept
    _, rows = read_monitor(path)
    assert [float(row[0]) for row in rows] == [1.0, 2.0, 3.0, 40.0]
    assert float(rows[3][2]) >= 50.0
    assert text.endswith("\n") and text.count("\n") == 6


def test_resume_with_fewer_rows_than_episodes_warns_and_appends(tmp_path):
    write_run(tmp_path, [1.0, 2.0])
    with pytest.warns(RuntimeWarning, match="holds 2 complete episode rows.*10 training"):
        log = RunLog(tmp_path, episodes=10, t=100)
    log.on_episode(3.0, 10, 110)
    log.close()
    _, rows = read_monitor(tmp_path / MONITOR_FILE)
    assert [float(row[0]) for row in rows] == [1.0, 2.0, 3.0]


def test_a_run_begun_again_from_step_0_writes_a_new_file(tmp_path):
    write_run(tmp_path, [1.0, 2.0])
    header0, _ = read_monitor(tmp_path / MONITOR_FILE)
    time.sleep(0.01)
    write_run(tmp_path, [7.0], episodes=0)
    header, rows = read_monitor(tmp_path / MONITOR_FILE)
    assert [float(row[0]) for row in rows] == [7.0]
    assert header["t_start"] > header0["t_start"]


@pytest.mark.parametrize("content, match", [
    ("r,l,t\n1.0,2,3.0\n", "does not start with a monitor header"),
    ('#{"env_id": "x"}\nr,l,t\n', "does not start with a monitor header"),
    ('#{"t_start": 1.0}\nreward,len\n', "line 2"),
    ('#{"t_start": 1.0}\nr,l,t\n1.0,2,3.0\noops\n', "line 4"),
    ('#{"t_start": 1.0, "tensorboard": "../elsewhere_1"}\nr,l,t\n', "folder name"),
])
def test_a_foreign_monitor_file_is_refused(tmp_path, content, match):
    (tmp_path / MONITOR_FILE).write_text(content)
    with pytest.raises(ValueError, match=match):
        RunLog(tmp_path, episodes=2, t=20)
    assert (tmp_path / MONITOR_FILE).read_text() == content    # left as it was


@pytest.mark.parametrize("kw, match", [
    ({"tb_log_name": "a/b"}, "tb_log_name"), ({"tb_log_name": ".."}, "tb_log_name"),
    ({"ep_info_window": 0}, "ep_info_window"), ({"log_interval": 0}, "log_interval"),
    ({"episodes": -1}, "episodes"), ({"elapsed": math.inf}, "elapsed"), ({"t": 1.5}, "t must"),
])
def test_arguments_are_checked(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        RunLog(tmp_path, **kw)
    assert not (tmp_path / MONITOR_FILE).exists()


def test_check_tensorboard_args(tmp_path, monkeypatch):
    assert check_tensorboard_args(None, None) == (None, None)
    assert check_tensorboard_args(None, "TD3") == (None, "TD3")
    with pytest.raises(ValueError, match="tb_log_name"):
        check_tensorboard_args(None, "../x")
    with pytest.raises(ValueError, match="tensorboard_log must be a folder path"):
        check_tensorboard_args(3, None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(MissingExtra, match="tensorboard_log='tb' needs tensorboardX"):
        check_tensorboard_args("tb", None)
    monkeypatch.undo()
    pytest.importorskip("tensorboardX", reason="the numddpg[tensorboard] extra")
    assert check_tensorboard_args(tmp_path / "tb", "DDPG") == (str(tmp_path / "tb"), "DDPG")


def test_missing_tensorboardx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)    # import tensorboardX now fails
    with pytest.raises(MissingExtra, match=r"pip install 'numddpg\[tensorboard\]'") as exc:
        RunLog(tmp_path, tensorboard_dir=tmp_path / "tb")
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, ImportError)
    assert not (tmp_path / "tb").exists() and not (tmp_path / MONITOR_FILE).exists()


def test_without_tensorboard_updates_cost_nothing_and_write_nothing(tmp_path):
    with RunLog(tmp_path) as log:
        log.on_updates(stats((1.0, 2.0)), 1)
        log.on_epoch({"AverageTestEpRet": 1.0}, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MONITOR_FILE]


def test_on_updates_accumulates_sums_not_arrays(tmp_path):
    """on_updates runs after every burst (every env step with update_every=1): its memory must
    not grow with the number of calls (tracemalloc: net growth over 20,000 calls < 4 kB; a list
    of the bursts would grow by > 1 MB)."""
    pytest.importorskip("tensorboardX", reason="the numddpg[tensorboard] extra")
    log = RunLog(None, tensorboard_dir=tmp_path / "tb")
    one, burst = stats((1.0, NAN)), stats((1.0, 2.0), (3.0, NAN), (5.0, 4.0))
    log.on_updates(one, 1)
    log.on_updates(burst, 1)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(10_000):
        log.on_updates(one, i)
        log.on_updates(burst, i)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    log.close()
    assert grown < 4096


# -- TensorBoard ------------------------------------------------------------------------------

def test_tensorboard_scalars_by_name_and_step(tmp_path):
    pytest.importorskip("tensorboardX", reason="the numddpg[tensorboard] extra")
    tb = tmp_path / "tb"
    (tmp_path / "run").mkdir()
    log = RunLog(tmp_path / "run", tensorboard_dir=tb, tb_log_name="DDPG", ep_info_window=3,
                 log_interval=2, env_id="Pendulum-v1")
    assert log.tensorboard_path == tb / "DDPG_1"
    log.on_updates(stats((1.0, 2.0)), 1)
    log.on_updates(stats((3.0, NAN), (5.0, 4.0)), 3)       # TD3: a critic-only update
    log.on_episode(10.0, 5, 5)
    log.on_episode(20.0, 5, 10)                            # 2 episodes: a dump at step 10
    log.on_updates(stats((7.0, NAN)), 11)                  # no actor update until the next dump
    log.on_episode(30.0, 6, 16)
    log.on_episode(40.0, 6, 22)                            # dump at 22: the window is (20, 30, 40)
    row = {"Epoch": 1, "TotalEnvInteracts": 25, "AverageTestEpRet": -100.5, "TestEpLen": 200.0,
           "LossPi": NAN, "LossQ": 7.0, "SPS": np.float64(1234.5)}
    log.on_epoch(row, 25)
    log.close()
    got = tb_scalars(tb / "DDPG_1")
    assert values(got["rollout/ep_rew_mean"]) == [(10, 15.0), (22, 30.0), (25, 30.0)]
    assert values(got["rollout/ep_len_mean"]) == [(10, 5.0), (22, 17 / 3), (25, 17 / 3)]
    # means over the updates since the previous dump: (1 + 3 + 5) / 3 and (2 + 4) / 2; then 7
    assert values(got["train/critic_loss"]) == [(10, 3.0), (22, 7.0)]
    assert values(got["train/actor_loss"]) == [(10, 3.0)]
    assert got["time/episodes"] == [(10, 2.0), (22, 4.0), (25, 4.0)]
    assert [step for step, _ in got["time/fps"]] == [10, 22, 25]
    assert all(v >= 0 and v == int(v) for _, v in got["time/fps"])
    assert values(got["eval/mean_reward"]) == [(25, -100.5)]
    assert values(got["eval/mean_ep_length"]) == [(25, 200.0)]
    numddpg = {tag: points for tag, points in got.items() if tag.startswith("numddpg/")}
    # every finite column but the step itself: LossPi (NaN) and TotalEnvInteracts are left out
    assert sorted(numddpg) == ["numddpg/AverageTestEpRet", "numddpg/Epoch", "numddpg/LossQ",
                               "numddpg/SPS", "numddpg/TestEpLen"]
    assert values(numddpg["numddpg/SPS"]) == [(25, 1234.5)]
    header, rows = read_monitor(tmp_path / "run" / MONITOR_FILE)
    assert header["tensorboard"] == "DDPG_1" and len(rows) == 4


def test_tensorboard_folders_are_numbered_like_sb3(tmp_path):
    pytest.importorskip("tensorboardX", reason="the numddpg[tensorboard] extra")
    tb = tmp_path / "tb"
    for name in ("DDPG_7", "DDPG_x", "DDPGx_9", "TD3_12", "DDPG_2"):
        (tb / name).mkdir(parents=True)
    assert latest_run_id(tb, "DDPG") == 7 and latest_run_id(tmp_path / "none", "DDPG") == 0
    paths = []
    for i in range(2):                                     # two new runs: 8, then 9
        (tmp_path / f"run{i}").mkdir()
        with RunLog(tmp_path / f"run{i}", tensorboard_dir=tb, tb_log_name="DDPG") as log:
            paths.append(log.tensorboard_path.name)
    with RunLog(None, tensorboard_dir=tb) as log:
        paths.append(log.tensorboard_path.name)
    assert paths == ["DDPG_8", "DDPG_9", "run_1"]


def test_tensorboard_resume_reopens_the_run_folder_and_hides_later_points(tmp_path):
    """The killed process logged 4 episodes (steps 10..40) but checkpointed after 2 (step 20):
    the resumed RunLog writes on in DDPG_1, and TensorBoard drops the points after step 20."""
    pytest.importorskip("tensorboardX", reason="the numddpg[tensorboard] extra")
    tb, run = tmp_path / "tb", tmp_path / "run"
    write_run(run, [1.0, 2.0, 3.0, 4.0], tensorboard_dir=tb, tb_log_name="DDPG", log_interval=1)
    with RunLog(None, tensorboard_dir=tb, tb_log_name="DDPG"):
        pass                                               # a later run took DDPG_2
    log = RunLog(run, tensorboard_dir=tb, tb_log_name="DDPG", log_interval=1, t=20, episodes=2,
                 elapsed=5.0)
    assert log.tensorboard_path == tb / "DDPG_1"
    log.on_episode(100.0, 10, 30)
    log.close()
    got = tb_scalars(tb / "DDPG_1")
    # the window is refilled from monitor.csv's kept rows: (1 + 2 + 100) / 3 at step 30
    assert values(got["rollout/ep_rew_mean"]) == [(10, 1.0), (20, 1.5), (30, 103 / 3)]
    assert got["time/episodes"] == [(10, 1.0), (20, 2.0), (30, 3.0)]
    _, rows = read_monitor(run / MONITOR_FILE)
    assert [float(row[0]) for row in rows] == [1.0, 2.0, 100.0]
    # a second learn() on the same run: nothing after its step to hide, points accumulate
    with RunLog(run, tensorboard_dir=tb, tb_log_name="DDPG", log_interval=1, t=30,
                episodes=3) as log:
        log.on_episode(200.0, 10, 40)
    got = tb_scalars(tb / "DDPG_1")
    assert [step for step, _ in got["rollout/ep_rew_mean"]] == [10, 20, 30, 40]


# -- the training loop (runs once algorithms.py drives RunLog) ---------------------------------

def _wired():
    import inspect
    from numddpg.training.algorithms import OffPolicyAlgorithm
    return "tensorboard_log" in inspect.signature(OffPolicyAlgorithm).parameters


@pytest.mark.skipif(not _wired(), reason="the loop does not drive RunLog yet (no tensorboard_log)")
def test_training_writes_monitor_and_tensorboard_and_resume_continues_them(tmp_path):
    pytest.importorskip("tensorboardX", reason="the numddpg[tensorboard] extra")
    from numddpg import DDPG
    tb, run = tmp_path / "tb", tmp_path / "run"
    # Pendulum-v1: 200-step episodes; an epoch (one test episode) every 400 steps
    hp = dict(hidden_sizes=(8,), steps_per_epoch=400, start_steps=200, update_after=200,
              update_every=25, batch_size=16, replay_size=10_000, num_test_episodes=1, seed=7,
              preset="none")
    model = DDPG("Pendulum-v1", run_dir=run, tensorboard_log=str(tb), **hp)
    model.learn(400, progress_bar=False)
    model = DDPG.resume(run, total_steps=800, progress_bar=False, tensorboard_log=str(tb))
    header, rows = read_monitor(run / MONITOR_FILE)
    assert header["env_id"] == "Pendulum-v1" and header["tensorboard"] == "DDPG_1"
    assert len(rows) == model.episodes == 4 and all(row[1] == "200" for row in rows)
    times = [float(row[2]) for row in rows]
    assert times == sorted(times)
    assert sorted(p.name for p in tb.iterdir()) == ["DDPG_1"]     # the resume wrote on there
    got = tb_scalars(tb / "DDPG_1")
    assert [step for step, _ in got["eval/mean_reward"]] == [400, 800]
    assert [step for step, _ in got["numddpg/Epoch"]] == [400, 800]
    assert got["time/episodes"][-1] == (800, 4.0)
    assert {"rollout/ep_rew_mean", "train/critic_loss", "train/actor_loss", "time/fps"} <= set(got)
