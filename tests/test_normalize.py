"""Observation normalization (numddpg.engine.normalizer): the running statistics, the map the
minibatches and the policy apply, and their round trips through checkpoints and policy files."""
import numpy as np
import pytest

from numddpg.training.algorithms import DDPG, OffPolicyAlgorithm
from numddpg.engine.buffer import gather_batch
from numddpg.files.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from numddpg.engine.normalizer import EPS, START_COUNT, ObsNormalizer
from numddpg.files.policy import load_policy

TINY = dict(hidden_sizes=(8,), start_steps=100, update_after=100, update_every=10,
            batch_size=16, steps_per_epoch=200, num_test_episodes=1, chunks=1, seed=0,
            normalize_obs=True)


def test_running_statistics_equal_the_closed_form(rng):
    norm = ObsNormalizer(3)
    batches = [rng.normal(2.0, 3.0, (n, 3)) for n in (1, 5, 1, 17, 40)]
    for b in batches:
        norm.update(b if len(b) > 1 else b[0])
    x = np.concatenate(batches)
    n = len(x) + START_COUNT                   # the prior: mean 0, var 1, weight START_COUNT
    mean = x.sum(0) / n
    var = (START_COUNT * (1 + mean ** 2) + ((x - mean) ** 2).sum(0)) / n
    np.testing.assert_allclose(norm.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(norm.var, var, rtol=1e-10)
    np.testing.assert_allclose(norm.scale, 1 / np.sqrt(var + EPS), rtol=1e-10)


def test_eps_floors_the_std_of_an_entry_that_never_varies(tmp_path):
    """obs_norm_eps: scale = 1 / sqrt(var + eps), so a constant entry (a goal height that
    never varies) is magnified by at most 1 / sqrt(eps); the Fetch presets' 1e-4 is the HER
    papers' std floor 0.01 (docs/math.md section 10).  The value reaches the run's normalizer,
    its checkpoint's record and the resumed run."""
    x = np.column_stack([np.full(1000, 0.42), np.linspace(-1, 1, 1000)])
    for eps in (EPS, 1e-4):
        norm = ObsNormalizer(2, eps=eps)
        norm.update(x)
        assert norm.var[0] < 2e-7                     # the prior's weight 1e-4 only
        assert norm.scale[0] <= 1 / np.sqrt(eps)
        assert norm.scale[0] > 2000 if eps == EPS else abs(norm.scale[0] - 100) < 0.1
        np.testing.assert_allclose(norm.scale, 1 / np.sqrt(norm.var + eps), rtol=1e-12)
        back = ObsNormalizer.from_map(norm.shift, norm.scale, 5.0, eps)
        np.testing.assert_allclose(back.scale, norm.scale, rtol=1e-12)
    model = DDPG("Pendulum-v1", run_dir=tmp_path / "r", obs_norm_eps=1e-4, **TINY)
    model.learn(300, progress_bar=False)
    assert model.obs_norm.eps == 1e-4
    np.testing.assert_allclose(model.obs_norm.scale, 1 / np.sqrt(model.obs_norm.var + 1e-4),
                               rtol=1e-12)
    again = OffPolicyAlgorithm.load(tmp_path / "r" / "checkpoint.npz")
    assert again.obs_norm.eps == 1e-4
    np.testing.assert_array_equal(again.obs_norm.scale, model.obs_norm.scale)
    with pytest.raises(ValueError, match="obs_norm_eps"):
        DDPG("Pendulum-v1", log=False, obs_norm_eps=0.0, **TINY)


@pytest.mark.parametrize("name, bad", [("obs_norm_eps", -1.0), ("obs_norm_eps", "x"),
                                       ("obs_clip", -1.0)])
def test_export_names_a_doctored_normalization_setting_in_one_line(tmp_path, capsys, name, bad):
    """`numddpg export` of a run whose checkpoint records a bad obs_norm_eps or obs_clip says
    which, with the value, and writes nothing (it used to end in NumPy's NaN warnings and a
    message about obs_scale)."""
    from helpers import rewrite_meta
    from numddpg.tools import cli
    model = DDPG("Pendulum-v1", run_dir=tmp_path / "r", **TINY)
    model.learn(300, progress_bar=False)
    bad_file = rewrite_meta(tmp_path / "r" / "checkpoint.npz", tmp_path / "bad.npz",
                            lambda meta: meta["hyperparameters"].update({name: bad}))
    out = tmp_path / "policy.npz"
    assert cli.main(["export", str(bad_file), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "bad.npz" in err and name in err and repr(bad) in err
    assert not out.exists()


def test_minibatches_are_gathered_normalized_and_the_identity_changes_no_bit(rng):
    buf = [rng.normal(0, 5, (6, 3)).astype(np.float32), rng.normal(size=(6, 1)).astype(np.float32),
           rng.normal(size=6).astype(np.float32), rng.normal(0, 5, (6, 3)).astype(np.float32),
           np.zeros(6, np.float32)]
    idx = np.array([5, 0, 3])
    out = [np.empty((3, 3), np.float32), np.empty((3, 1), np.float32), np.empty(3, np.float32),
           np.empty((3, 3), np.float32), np.empty(3, np.float32)]
    shift, scale, clip = np.array([1.0, -2.0, 0.5]), np.array([0.5, 2.0, 1.0]), np.array([2.0])
    gather_batch(idx, *buf, shift, scale, clip, *out)
    want = np.clip((buf[0][idx].astype(np.float64) - shift) * scale, -2, 2).astype(np.float32)
    np.testing.assert_array_equal(out[0], want)
    ident = ObsNormalizer.identity(3)
    gather_batch(idx, *buf, ident.shift, ident.scale, ident.clip, *out)
    np.testing.assert_array_equal(out[0], buf[0][idx])
    np.testing.assert_array_equal(out[3], buf[3][idx])


def test_the_policy_acts_on_normalized_observations():
    model = DDPG("Pendulum-v1", log=False, **TINY).learn(300, progress_bar=False)
    obs = np.array([0.3, -0.8, 4.0], np.float32)
    normalized = model.obs_norm(obs)
    plain = DDPG("Pendulum-v1", log=False, **dict(TINY, normalize_obs=False))
    plain.agent.actor.params[:] = model.agent.actor.params
    np.testing.assert_allclose(model.predict(obs)[0], plain.predict(normalized)[0], atol=1e-6)
    np.testing.assert_allclose(model.policy.act(obs), plain.policy.act(normalized), atol=1e-6)


def test_resume_is_exact_and_files_carry_the_statistics(tmp_path):
    a = DDPG("Pendulum-v1", run_dir=tmp_path / "a", **TINY).learn(400, progress_bar=False)
    b = OffPolicyAlgorithm.load(tmp_path / "a" / "checkpoint.npz")
    a.learn(400, progress_bar=False)
    b.learn(400, progress_bar=False)
    assert np.array_equal(a.agent.actor.params, b.agent.actor.params)
    assert np.array_equal(a.obs_norm.var, b.obs_norm.var)
    policy = load_policy(tmp_path / "a")                     # NumPy only, normalizing too
    obs = np.random.default_rng(1).uniform(-1, 1, (5, 3)).astype(np.float32)
    np.testing.assert_allclose(policy(obs), a.predict(obs)[0], atol=1e-5)


def test_doctored_statistics_are_refused(tmp_path):
    DDPG("Pendulum-v1", run_dir=tmp_path / "r", **TINY).learn(200, progress_bar=False)
    path = tmp_path / "r" / "checkpoint.npz"
    meta, arrays = read_checkpoint(path, allow_nonfinite=("epoch.update_stats",))
    for k in ("format", "format_version", "numddpg_version", "arrays"):
        meta.pop(k)
    arrays["norm.var"] = -arrays["norm.var"]
    write_checkpoint(tmp_path / "bad.npz", arrays, meta, allow_nonfinite=("epoch.update_stats",))
    with pytest.raises(CheckpointError, match="observation statistics"):
        OffPolicyAlgorithm.load(tmp_path / "bad.npz")
    pmeta, parr = read_checkpoint(tmp_path / "r" / "policy.npz")
    for k in ("format", "format_version", "numddpg_version", "arrays"):
        pmeta.pop(k)
    parr["obs_scale"] = np.zeros_like(parr["obs_scale"])
    write_checkpoint(tmp_path / "p.npz", parr, pmeta)
    with pytest.raises(CheckpointError, match="obs_scale must be positive"):
        load_policy(tmp_path / "p.npz")


def test_scaled_rewards_equal_their_numpy_twin_and_leave_the_rest(rng):
    from numddpg.kernels.normalize import scaled_rewards_into
    rew = rng.normal(0, 10, 50).astype(np.float32)
    out = np.full(50, 7.0, np.float32)
    scaled_rewards_into(rew, 40, 3.0, 2.5, out)
    want = np.clip(rew[:40].astype(np.float64) / 3.0, -2.5, 2.5).astype(np.float32)
    np.testing.assert_array_equal(out[:40], want)              # the same float64 ops: exact
    assert np.all(out[40:] == 7.0) and np.abs(want).max() == np.float32(2.5)
