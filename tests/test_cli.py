"""`numddpg train` and `numddpg eval` end to end, on tiny runs."""
import csv
import json

import pytest

from numddpg.tools import cli
from numddpg.training.algorithms import HYPERPARAMETERS
from numddpg.files.rundir import PROGRESS_COLUMNS

TINY = ["--hidden", "8", "--start-steps", "100", "--update-after", "100", "--batch-size", "16",
        "--steps-per-epoch", "200", "--num-test-episodes", "1", "--quiet"]


def train(tmp_path, *extra, name="run"):
    return cli.main(["train", "--total-steps", "400", "--seed", "1", "--out",
                     str(tmp_path / name), *TINY, *extra])


def test_train_writes_a_run_and_reports(tmp_path, capsys):
    assert train(tmp_path, "--gamma", "0.9", "--noise", "ou") == 0
    out = capsys.readouterr().out
    assert "ddpg on Pendulum-v1, 400 steps, seed 1, preset Pendulum-v1" in out
    assert "final policy" in out and "random policy" in out and "over random" in out
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    hp = config["hyperparameters"]
    assert hp["gamma"] == 0.9 and hp["noise"] == "ou" and hp["hidden_sizes"] == [8]
    assert hp["batch_size"] == 16 and hp["seed"] == 1
    with open(run / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and tuple(rows[0]) == PROGRESS_COLUMNS
    assert (run / "policy.npz").exists()


def test_eval_loads_the_final_policy(tmp_path, capsys):
    assert train(tmp_path, "--no-baseline") == 0
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Pendulum-v1 (ddpg policy from") and "over 2 episodes" in out
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1",
                     "--render", "rgb_array"]) == 0


def test_an_existing_run_directory_is_never_overwritten(tmp_path, capsys):
    assert train(tmp_path, "--no-baseline") == 0
    before = (tmp_path / "run" / "progress.csv").read_text()
    capsys.readouterr()
    assert train(tmp_path) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "never overwrites" in err
    assert (tmp_path / "run" / "progress.csv").read_text() == before


@pytest.mark.parametrize("argv, message", [
    (["--env", "Pendulm-v1"], "Did you mean: Pendulum-v1"),
    (["--env", "CartPole-v1"], "Discrete"),
    (["--batch-size", "64", "--replay-size", "32"], "must not exceed replay_size"),
])
def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys, argv, message):
    assert cli.main(["train", "--out", str(tmp_path / "x"), "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_eval_of_a_missing_run(tmp_path, capsys):
    assert cli.main(["eval", str(tmp_path / "nope")]) == 2
    assert "no saved policy" in capsys.readouterr().err


def test_every_hyperparameter_has_a_flag():
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices
    assert {"train", "eval"} <= set(sub)
    flags = {opt for a in sub["train"]._actions for opt in a.option_strings}
    for name in HYPERPARAMETERS:
        want = "--hidden" if name == "hidden_sizes" else "--" + name.replace("_", "-")
        assert want in flags, name
    assert {"--env", "--total-steps", "--preset", "--out", "--quiet"} <= flags
    try:
        import numddpg.kernels.gradcheck  # noqa: F401
    except ModuleNotFoundError:
        return
    assert "gradcheck" in sub
