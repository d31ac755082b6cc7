"""`numddpg train --help` shows, beside each hyperparameter's default, the value the preset
that the same command line would apply sets (issue 16: "--help shows the values the preset
will apply"), and those are the values a model built with that preset really gets."""
import json

import pytest

from numddpg.tools import cli
from numddpg.training.algorithms import DDPG
from numddpg.engine.presets import PRESETS


def train_help(capsys, monkeypatch, *args):
    """{first option string: its help text, on one line} of `numddpg train ARGS --help`."""
    monkeypatch.setenv("COLUMNS", "10000")          # argparse wraps nothing: one line per help
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", *args, "--help"])
    assert stop.value.code == 0
    entries, current = {}, None
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("  -"):                  # "  --batch-size BATCH_SIZE  minibatch ..."
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif line.startswith("    ") and current:   # a help pushed to the next line
            entries[current] += " " + line.strip()
        else:
            current = None
            entries.setdefault("", "")
            entries[""] += line + "\n"              # titles and group descriptions
    return entries


def shown(value):
    """A value as the help writes it (a list of widths as the flag takes it: 64 64)."""
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def flag(name):
    return {"hidden_sizes": "--hidden"}.get(name, "--" + name.replace("_", "-"))


@pytest.mark.parametrize("env", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_help_shows_the_auto_preset_values_that_a_model_gets(capsys, monkeypatch, env):
    entries = train_help(capsys, monkeypatch, "--env", env)
    model = DDPG(env, log=False, chunks=1)           # preset="auto", as `numddpg train`
    applied = {**model.hyperparameters, "total_steps": model.preset_total_steps}
    assert f"the preset {env} applies" in entries[""]
    for name, value in PRESETS[env].items():
        assert entries[flag(name)].endswith(f"; preset {env}: {shown(value)})"), name
        assert applied[name] == value, name
    # a hyperparameter the preset leaves alone shows its default only
    untouched = [n for n in ("polyak", "pi_lr", "q_lr") if n not in PRESETS[env]]
    assert untouched
    for name in untouched:
        assert "preset" not in entries[flag(name)], name
        assert entries[flag(name)].endswith(f"(default {shown(model.hyperparameters[name])})")


def test_default_env_shows_pendulum_and_the_hidden_default(capsys, monkeypatch):
    entries = train_help(capsys, monkeypatch)
    assert entries["--hidden"].endswith("(default 256 256; preset Pendulum-v1: 64 64)")
    assert entries["--gamma"].endswith("(default 0.99; preset Pendulum-v1: 0.98)")
    assert entries["--total-steps"].endswith("; preset Pendulum-v1: 20000)")


def test_env_and_preset_are_read_as_argparse_reads_them(capsys, monkeypatch):
    # --flag=value, and the last occurrence wins
    entries = train_help(capsys, monkeypatch, "--env", "HalfCheetah-v5", "--env=Pendulum-v1")
    assert entries["--gamma"].endswith("preset Pendulum-v1: 0.98)")
    # an explicit --preset names the preset, whatever the env
    entries = train_help(capsys, monkeypatch, "--env", "Pendulum-v1", "--preset", "Hopper-v5")
    assert entries["--steps-per-epoch"].endswith("(default 4000; preset Hopper-v5: 5000)")
    assert "preset" not in entries["--gamma"]


@pytest.mark.parametrize("args", [("--preset", "none"), ("--env", "NoSuchEnv-v0")])
def test_no_preset_no_preset_values(capsys, monkeypatch, args):
    entries = train_help(capsys, monkeypatch, *args)
    assert "no preset applies" in entries[""]
    assert not any("; preset " in text for text in entries.values())
    assert entries["--gamma"].endswith("(default 0.99)")


def test_preset_file(capsys, monkeypatch, tmp_path):
    path = tmp_path / "100%best.json"                # argparse %-formats help: escaped
    path.write_text(json.dumps({"gamma": 0.9, "policy_delay": 3, "tuned": {"by": "hand"}}))
    entries = train_help(capsys, monkeypatch, "--algo", "td3", "--preset", str(path))
    assert entries["--gamma"].endswith(f"(default 0.99; preset {path}: 0.9)")
    assert entries["--policy-delay"].endswith(f"(default 2; preset {path}: 3)")
    assert "preset" not in entries["--batch-size"]


def test_unreadable_preset_file_is_named_and_help_still_shows(capsys, monkeypatch, tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"gama": 0.9}))
    entries = train_help(capsys, monkeypatch, "--preset", str(path))
    assert f"the preset file {path} cannot be read" in entries[""]
    assert "'gama'" in entries[""]
    assert entries["--gamma"].endswith("(default 0.99)")


def test_without_help_the_command_line_is_not_scanned():
    assert cli._preset_preview(["train", "--env", "HalfCheetah-v5"]) == (None, {})
    assert cli._preset_preview(None) == (None, {})
    assert cli._preset_preview(["train", "-h"])[0] == "Pendulum-v1"
