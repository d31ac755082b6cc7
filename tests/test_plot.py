"""`numddpg plot`: runs grouped by configuration, mean +- std over seeds, smoothing, the PNG.

The runs are written by hand (config.json and progress.csv through numddpg.files.rundir, so in the
real format) with known numbers, so every plotted value can be checked exactly.
"""
import json
import math
import sys

import numpy as np
import pytest

from numddpg.tools import cli
from numddpg.tools import plot as pl
from numddpg.files.rundir import PROGRESS_COLUMNS, ProgressCSV, write_config

pytest.importorskip("matplotlib")

XS = [1000, 2000, 3000]


def make_run(run_dir, ys, seed=0, hidden=(64, 64), env="Pendulum-v1", xs=XS, algo="ddpg"):
    """A run directory whose progress.csv has AverageTestEpRet = ys at TotalEnvInteracts = xs."""
    run_dir.mkdir(parents=True)
    write_config(run_dir, {"algo": algo, "env_id": env, "preset": "auto", "total_steps": xs[-1],
                           "hyperparameters": {"hidden_sizes": list(hidden), "gamma": 0.98,
                                               "seed": seed, "blas_threads": 1}})
    csv = ProgressCSV(run_dir / "progress.csv")
    for i, (x, y) in enumerate(zip(xs, ys)):
        row = {c: math.nan for c in PROGRESS_COLUMNS}
        row.update(Epoch=i + 1, TotalEnvInteracts=x, AverageTestEpRet=float(y),
                   AverageEpRet=float(y) - 100)
        csv.write(row)
    csv.close()
    return run_dir


# Three configurations: A with 3 seeds, B with 2, C with 1 (no band); plus a failed sweep cell.
A = [[-1500, -800, -200], [-1400, -600, -150], [-1300, -700, -250]]
B = [[-1450, -1000, -500], [-1350, -900, -300]]
C = [[-1200, -1100, -1000]]


@pytest.fixture
def sweep_dir(tmp_path):
    root = tmp_path / "sweep"
    for seed, ys in enumerate(A):
        make_run(root / f"a_s{seed}", ys, seed=seed, hidden=(64, 64))
    for seed, ys in enumerate(B):
        make_run(root / f"b_s{seed}", ys, seed=seed, hidden=(16, 16))
    make_run(root / "nested" / "c_s0", C[0], hidden=(8,))
    failed = make_run(root / "d_s0", [0, 0, 0], hidden=(4,))
    (failed / "error.json").write_text(json.dumps({"error": "boom"}))
    return root


def rgb(color):
    from matplotlib.colors import to_rgb
    return np.array(to_rgb(color))


def test_one_line_per_configuration_with_mean_and_std_band(sweep_dir, tmp_path):
    info = pl.plot_runs([sweep_dir], out=tmp_path / "curves.png")
    ax, = info["figure"].axes
    lines = ax.get_lines()
    assert len(lines) == 3                                   # A, B, C; the failed cell left out
    by_label = {line.get_label(): line for line in lines}
    assert set(by_label) == {"ddpg hidden_sizes=64x64 (3 seeds)",
                             "ddpg hidden_sizes=16x16 (2 seeds)", "ddpg hidden_sizes=8 (1 seed)"}
    for label, runs in [("64x64 (3 seeds)", A), ("16x16 (2 seeds)", B), ("8 (1 seed)", C)]:
        line = by_label[f"ddpg hidden_sizes={label}"]
        assert line.get_xdata().tolist() == XS
        # same x for every seed: the mean is the plain mean of the rows (tolerance: rounding)
        np.testing.assert_allclose(line.get_ydata(), np.mean(runs, axis=0), rtol=1e-12)
    assert len(ax.collections) == 2                          # bands for A and B, not for C
    band = ax.collections[0]                                 # A's, drawn with A's line
    np.testing.assert_allclose(band.get_facecolor()[0][:3], rgb(lines[0].get_color()))
    ys = band.get_paths()[0].vertices[:, 1]
    mean, std = np.mean(A, axis=0), np.std(A, axis=0)        # ddof=0
    for value in [*(mean + std), *(mean - std)]:
        assert np.isclose(ys, value, rtol=1e-12).any()
    assert ax.get_xlabel() == "TotalEnvInteracts" and ax.get_ylabel() == "AverageTestEpRet"
    assert ax.get_title() == "Pendulum-v1"
    assert info["panels"] == {"Pendulum-v1": [(line.get_label(), n) for line, n in
                                              zip(lines, [3, 2, 1])]}


def test_the_png_is_valid_and_shows_exactly_the_lines_drawn(sweep_dir, tmp_path):
    from matplotlib.image import imread
    out = tmp_path / "curves.png"
    info = pl.plot_runs([sweep_dir], out=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(out)
    assert image.shape == (round(4.4 * 120), round(6.4 * 120), 4)   # figure size x dpi
    pixels = image[..., :3].reshape(-1, 3)
    # the lines' colours (the default cycle C0, C1, C2) are in the picture; the next one, which
    # a fourth line (the failed run) would have had, is not
    colors = [rgb(line.get_color()) for line in info["figure"].axes[0].get_lines()]
    np.testing.assert_allclose(colors, [rgb(c) for c in ["C0", "C1", "C2"]])
    for color in ["C0", "C1", "C2", "C3"]:
        present = (np.abs(pixels - rgb(color)).max(axis=1) < 0.02).sum()
        if color == "C3":
            assert present == 0
        else:
            assert present > 50                              # a line, not a stray pixel


def test_runs_of_another_env_get_their_own_panel(sweep_dir, tmp_path):
    make_run(tmp_path / "hc" / "r0", [0, 1000, 2000], env="HalfCheetah-v5", xs=[5000, 10000, 15000])
    info = pl.plot_runs([sweep_dir, tmp_path / "hc"], out=tmp_path / "curves.png")
    axes = info["figure"].axes
    assert [ax.get_title() for ax in axes] == ["Pendulum-v1", "HalfCheetah-v5"]
    assert [len(ax.get_lines()) for ax in axes] == [3, 1]


def test_smoothing_is_a_centred_moving_average_that_keeps_length_and_ends():
    assert pl.smooth([1, 2, 3, 4, 5], 3).tolist() == [1.5, 2, 3, 4, 4.5]
    assert pl.smooth([1, 2, 3, 4, 5], 1).tolist() == [1, 2, 3, 4, 5]
    assert pl.smooth([1.0, np.nan, 3.0], 3).tolist() == [1, 2, 3]        # NaN epochs skipped
    assert pl.smooth([2.0, 4.0], 9).tolist() == [3, 3]                   # window > length


def test_runs_of_different_lengths_are_averaged_where_they_exist():
    x, mean, std, n = pl.aggregate([([1, 2, 3], [0, 0, 0]), ([1, 3], [2, 4]),
                                    ([1, 2], [np.nan, 6])])
    assert x.tolist() == [1, 2, 3] and n.tolist() == [2, 3, 2]
    # run 2 interpolated at x=2 is 3; run 3's NaN point is dropped (it starts at x=2)
    assert mean.tolist() == [1, 3, 2]
    np.testing.assert_allclose(std, [1, np.std([0, 3, 6]), 2], rtol=1e-12)


def test_smoothing_and_another_column_through_the_command_line(sweep_dir, tmp_path, capsys):
    out = tmp_path / "eprets.png"
    assert cli.main(["plot", str(sweep_dir), "-y", "AverageEpRet", "--smooth", "3",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: 3 configurations from 6 runs" in printed
    assert "skipped" in printed and "d_s0: failed (error.json)" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["-y", "AverageReturn"], "has no column 'AverageReturn'; its columns are Epoch,"),
    (["--smooth", "0"], "--smooth must be a positive integer"),
])
def test_bad_options_are_explained(sweep_dir, tmp_path, capsys, argv, message):
    assert cli.main(["plot", str(sweep_dir), "-o", str(tmp_path / "x.png"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_nothing_to_plot_is_an_error(tmp_path):
    with pytest.raises(pl.PlotError, match="no run directories"):
        pl.plot_runs([tmp_path], out=tmp_path / "x.png")


def test_without_matplotlib_the_error_names_the_extra(sweep_dir, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(pl.PlotError, match=r"pip install 'numddpg\[plot\]'"):
        pl.plot_runs([sweep_dir], out=tmp_path / "x.png")
