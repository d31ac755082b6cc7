"""bench/learning.py's guard against reusing a cell trained with other hyperparameters.

A cell directory is reused (skipped if finished, resumed if killed) and reported by its name
alone, so without the guard a preset change would let old runs stand in the table for a
configuration they never ran.  These tests build cells with a config.json only: no training.
"""
import importlib.util
import json
from pathlib import Path

import pytest

from numddpg.engine.presets import preset_for

LEARNING = Path(__file__).resolve().parent.parent / "bench" / "learning.py"


@pytest.fixture(scope="module")
def learning():
    spec = importlib.util.spec_from_file_location("bench_learning", LEARNING)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_cell(learning, out, env, algo, seed, tag="", **changes):
    """A cell whose config.json holds what `numddpg train` would have written for the preset,
    with ``changes`` applied (and run-only fields that the guard must ignore)."""
    hp = learning.expected_hyperparameters(env, algo, [])
    hp = {k: list(v) if isinstance(v, tuple) else v for k, v in hp.items()}
    hp.update(changes)
    hp.update(seed=seed, blas_threads=1, checkpoint_every=None, checkpoint_buffer=False)
    run = learning.cell_dir(out, env, algo, seed, tag)
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"env_id": env, "hyperparameters": hp}))
    return run, (env, algo, seed)


ENV = "LunarLanderContinuous-v3"


def test_expected_follows_preset_then_set(learning):
    hp = learning.expected_hyperparameters(ENV, "ddpg", ["batch_size=256", "hidden_sizes=64 64"])
    assert hp["gamma"] == preset_for(ENV)["gamma"] == 0.98       # the preset over the default
    assert hp["batch_size"] == "256" and hp["hidden_sizes"] == "64 64"   # --set over the preset
    assert "seed" not in hp and "blas_threads" not in hp          # how a run is executed
    assert "policy_delay" not in hp
    assert learning.expected_hyperparameters(ENV, "td3", [])["policy_delay"] == 2


def test_matching_cell_is_accepted(learning, tmp_path):
    cells = [make_cell(learning, tmp_path, ENV, "ddpg", s) for s in (0, 1)]
    learning.check_cells(cells, [])                                # no SystemExit
    assert learning.config_mismatch(cells[0][0], learning.expected_hyperparameters(ENV, "ddpg", [])) == []


def test_cell_from_an_older_preset_is_refused(learning, tmp_path):
    ok = make_cell(learning, tmp_path, ENV, "ddpg", 0)
    stale = make_cell(learning, tmp_path, ENV, "ddpg", 1, batch_size=256, gamma=0.99)
    with pytest.raises(SystemExit) as exc:
        learning.check_cells([ok, stale], [])
    msg = str(exc.value)
    assert str(stale[0]) in msg and str(ok[0]) not in msg
    assert "batch_size: run 256, now 100" in msg and "gamma: run 0.99, now 0.98" in msg
    assert "--tag" in msg                                          # says what to do


def test_variant_values_given_with_set_are_accepted(learning, tmp_path):
    cell = make_cell(learning, tmp_path, ENV, "ddpg", 0, "b256", batch_size=256, pi_lr=1e-4)
    learning.check_cells([cell], ["batch_size=256", "pi_lr=1e-4"])
    with pytest.raises(SystemExit, match="pi_lr: run 0.0001, now 0.001"):
        learning.check_cells([cell], ["batch_size=256"])


def test_cell_without_config_is_new(learning, tmp_path):
    # a cell that has not started yet (no directory, or no config.json) has nothing to compare
    learning.check_cells([(learning.cell_dir(tmp_path, ENV, "ddpg", 7), (ENV, "ddpg", 7))], [])


@pytest.mark.parametrize("a, b, same", [
    ("256 256", [256, 256], True), ((256, 256), [256, 256], True), ("1e-3", 0.001, True),
    ("3e-4", 0.001, False), ("ou", "gaussian", False), ("400 300", [400, 300, 1], False),
    (None, 0.1, False)])
def test_canon_compares_json_preset_and_set_forms(learning, a, b, same):
    assert (learning._canon(a) == learning._canon(b)) is same


def test_the_learning_tables_are_the_scripts_output():
    """bench/RESULTS.md's and README.md's campaign tables are what bench/learning_table.py
    computes from the committed logs (bench/learning/campaign), not typed by hand."""
    spec = importlib.util.spec_from_file_location("learning_table",
                                                  LEARNING.with_name("learning_table.py"))
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    assert table.main(["--check", "--no-plot"]) == 0


def test_iqm_is_rliables_trimmed_mean():
    spec = importlib.util.spec_from_file_location("learning_table",
                                                  LEARNING.with_name("learning_table.py"))
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    assert table.iqm([5, 1, 3, 100, 2]) == 10 / 3            # drops 1 and 100
    assert table.iqm(list(range(10))) == 4.5                  # drops 0, 1 and 8, 9
    lo, hi = table.iqm_interval([1.0, 2.0, 3.0, 4.0, 5.0], reps=2000)
    assert 1.0 <= lo <= 3.0 <= hi <= 5.0


def test_a_miss_says_whether_the_target_lies_inside_the_interval():
    spec = importlib.util.spec_from_file_location("learning_table",
                                                  LEARNING.with_name("learning_table.py"))
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)

    class S:                                                  # a finished seed's figure
        def __init__(self, last10):
            self.last10 = last10

    spread = [S(x) for x in (7230, 8024, 10263, 9536, 9607)]  # HalfCheetah TD3's seeds
    assert table.verdict("HalfCheetah-v5", "td3", spread, 5) == (
        "missed by 5 % (the target lies inside the 95 % interval)")
    tight = [S(x) for x in (8000, 8010, 8020, 8030, 8040)]
    assert table.verdict("HalfCheetah-v5", "td3", tight, 5) == "missed by 16 %"
    assert table.verdict("HalfCheetah-v5", "td3", [S(9600)] * 5, 5) == "met"
    assert table.verdict("HalfCheetah-v5", "td3", tight[:2], 5) == "2 of 5 seeds"


def _fetch_table():
    spec = importlib.util.spec_from_file_location("fetch_table",
                                                  LEARNING.with_name("fetch_table.py"))
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    return table


def test_the_fetch_table_is_the_scripts_output():
    """bench/RESULTS.md's FetchReach-v4 table is what bench/fetch_table.py computes from the
    committed logs (bench/learning/her: progress.csv, config.json, final_eval.json)."""
    assert _fetch_table().main(["--check"]) == 0


def test_fetch_table_names_the_settings_a_run_differs_in():
    table = _fetch_table()
    preset = preset_for("FetchReach-v4")
    hp = {k: list(v) if isinstance(v, tuple) else v for k, v in preset.items()
          if k != "total_steps"}
    assert table.settings(dict(hp, seed=3, chunks=1), preset) == []
    old = {k: v for k, v in hp.items() if k not in ("action_l2", "clip_return", "random_eps")}
    assert table.settings(dict(old, gradient_steps=20), preset) == [
        "`action_l2` 0.0", "`clip_return` false", "`gradient_steps` 20", "`random_eps` 0.0"]


def test_fetchpush_success_at_a_mark_is_the_mean_of_the_window_ending_there():
    table = _fetch_table()

    class R:                                                  # a run's test success per epoch
        steps = [1000 * (i + 1) for i in range(25)]
        test_success = [0.0] * 10 + [0.1 * (i % 2) for i in range(10)] + [1.0] * 5

    assert table.success_at(R, 10_000) == 0.0
    assert abs(table.success_at(R, 20_000) - 0.05) < 1e-12   # epochs 11-20: five of 0.1
    assert abs(table.success_at(R, 25_000) - 0.53) < 1e-12   # epochs 16-25
    assert table.success_at(R, 5_000) is None                 # fewer than 10 epochs
    assert table.success_at(R, 30_000) is None                # not reached
    steps, means = table.running_success(R)
    assert steps[0] == 10_000 and len(means) == 16 and means[0] == 0.0
