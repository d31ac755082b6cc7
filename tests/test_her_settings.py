"""The HER papers' settings (Andrychowicz et al. 2017, Plappert et al. 2018) as hyperparameters:
the actor's action penalty ``action_l2``, the clip of the TD target ``clip_return`` (docs/math.md
sections 4 and 5) and the random actions of exploration ``random_eps`` (numddpg.training.acting).
Each is off by default, and off changes no number (bench/fingerprint.py holds the native run's
bits; here: nothing is drawn, nothing is clipped).
"""
import numpy as np
import pytest

from numddpg.engine.agents import (DDPGAgent, TD3Agent, agent_arrays, agent_from_arrays,
                                   load_agent, save_agent)
from numddpg.engine.noise import GaussianNoise, NoNoise
from numddpg.engine.presets import preset_for
from numddpg.kernels import gradcheck as gc
from numddpg.kernels import reference as ref
from numddpg.kernels.update import HP, clip_targets, return_floor
from numddpg.tools import gradcheck as gradcheck_command
from numddpg.tools.cli import main
from numddpg.training.acting import Policy
from numddpg.training.algorithms import DDPG, TD3

from helpers import small_agent


def goal_batch(rng, agent, B):
    """A minibatch with a goal env's rewards, -1 or 0, and no terminal rows."""
    o, a = agent.obs_dim, agent.act_dim
    return (rng.standard_normal((B, o)), rng.uniform(agent.act_low, agent.act_high, (B, a)),
            -rng.integers(0, 2, B).astype(np.float64), rng.standard_normal((B, o)), np.zeros(B))


# ---------------------------------------------------------------------------------------------
# The update: kernels against the twin, the clip, the penalty's gradient
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, n_critics", [(DDPGAgent, None), (TD3Agent, None), (DDPGAgent, 3)])
@pytest.mark.parametrize("chunks", [1, 3])
@pytest.mark.parametrize("action_l2, clip_return", [(1.0, True), (0.3, False), (0.0, True)])
def test_kernel_update_equals_the_twin(cls, n_critics, chunks, action_l2, clip_return, rng):
    kw = dict(action_l2=action_l2, clip_return=clip_return, gamma=0.8, chunks=chunks,
              n_critics=n_critics)
    fused, stepwise = small_agent(cls, **kw), small_agent(cls, **kw)
    for _ in range(4):
        batch = goal_batch(rng, fused, 10)
        info = fused.update(*batch)
        info_s = stepwise.update_stepwise(*batch)
        for key in info:
            assert info[key] == pytest.approx(info_s[key], rel=1e-12, abs=1e-12, nan_ok=True)
    for name, arr in fused.state_dict().items():
        np.testing.assert_allclose(arr, stepwise.state_dict()[name], rtol=0, atol=1e-12,
                                   err_msg=name)


def test_the_penalty_enters_the_actor_loss(rng):
    """loss_pi is -mean Q + action_l2 mean over rows and action dims of u^2 (the mean of
    (a / max_u)^2 in the papers' code), with u the actor's tanh output before the step."""
    agent = small_agent(DDPGAgent, action_l2=2.5)
    twin = small_agent(DDPGAgent)
    batch = goal_batch(rng, agent, 7)
    _, u, _ = ref.actor_action(agent.actor.params, agent.actor.sizes, agent.mid, agent.half,
                               batch[0])
    penalty = 2.5 * np.sum(u * u) / u.size
    assert agent.update(*batch)["loss_pi"] == pytest.approx(
        twin.update(*batch)["loss_pi"] + penalty, rel=1e-12)


def test_clipped_targets_are_the_twins_within_the_range(rng):
    gamma = 0.75                                           # bound -1 / (1 - gamma) = -4
    agent = small_agent(DDPGAgent, gamma=gamma, clip_return=True)
    obs, act, rew, obs2, done = goal_batch(rng, agent, 64)
    rew = rew * 8.0 + 2.0                                  # targets on both sides of [-4, 0]
    y = ref.td_target(agent.actor_targ.params, agent.critic_targ.params, agent.actor.sizes,
                      agent.critic.sizes, agent.mid, agent.half, gamma, rew, obs2, done)
    assert (y < -4).any() and (y > 0).any()
    agent.update(obs, act, rew, obs2, done)
    kernel_y = agent._buffers(64)[1].y                     # the update's targets
    np.testing.assert_allclose(kernel_y, np.clip(y, -4.0, 0.0), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ref.clip_target(y, gamma), np.clip(y, -4.0, 0.0))


def test_clip_keeps_nan_for_the_guard_and_gamma_one_has_no_lower_bound():
    y = np.array([np.nan, -100.0, 5.0, -3.0, 0.0])
    assert return_floor(0.75) == -4.0 and return_floor(1.0) == -np.inf
    clip_targets(y, 0, 5, return_floor(0.75))
    np.testing.assert_array_equal(y, [np.nan, -4.0, 0.0, -3.0, 0.0])
    y = np.array([-1e9, 2.0])
    clip_targets(y, 0, 2, return_floor(1.0))
    np.testing.assert_array_equal(y, [-1e9, 0.0])
    np.testing.assert_array_equal(ref.clip_target(np.array([-1e9, 2.0]), 1.0), [-1e9, 0.0])


def test_off_by_default_everywhere():
    agent = DDPGAgent(3, 1, -1, 1, hidden_sizes=(4,))
    assert (agent.action_l2, agent.clip_return) == (0.0, False)
    assert agent._parts[2:] == (None, None, None)      # no floor, penalty or decay compiled
    assert not {"action_l2", "clip_return"} & set(HP._fields)     # (optional parts only)
    model = DDPG("Pendulum-v1", log=False, hidden_sizes=(4,))
    assert (model.action_l2, model.clip_return, model.random_eps) == (0.0, False, 0.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(action_l2=-0.1), "action_l2"), (dict(action_l2=float("nan")), "action_l2"),
    (dict(clip_return=1), "clip_return"), (dict(random_eps=1.5), "random_eps"),
    (dict(random_eps=-0.1), "random_eps")])
def test_bad_values_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DDPG("Pendulum-v1", log=False, **kwargs)


def test_agent_files_keep_the_settings_and_old_configs_mean_off(tmp_path):
    agent = small_agent(TD3Agent, action_l2=0.5, clip_return=True)
    back = load_agent(save_agent(tmp_path / "a.npz", agent))
    assert (back.action_l2, back.clip_return) == (0.5, True)
    assert back.config() == agent.config()
    cfg = agent.config()
    del cfg["action_l2"], cfg["clip_return"]             # a record from before the settings
    old = agent_from_arrays(cfg, agent_arrays(agent), "old")
    assert (old.action_l2, old.clip_return) == (0.0, False)


# ---------------------------------------------------------------------------------------------
# The gradient check covers the penalty
# ---------------------------------------------------------------------------------------------

def rows_of(out):
    return [line for line in out.splitlines()
            if line.startswith(("L_Q ", "J ")) and line.endswith((" OK", " FAIL"))]


def test_gradcheck_passes_with_the_penalty_and_the_clip(capsys):
    assert main(["gradcheck", "--action-l2", "1.0", "--clip-return"]) == 0
    out = capsys.readouterr().out
    assert "action_l2=1 clip_return" in out and "14/14 rows within bound" in out


def test_gradcheck_fails_without_the_penalty_in_the_gradient(monkeypatch, capsys):
    """The chain with the penalty's du term left out: the J rows must FAIL against the finite
    differences of J, which has the penalty (a check that cannot fail proves nothing)."""
    real = ref.actor_loss_and_grad

    def without_penalty(*args):
        return real(*args[:-1], 0.0)

    monkeypatch.setattr(gc.ref, "actor_loss_and_grad", without_penalty)
    assert main(["gradcheck", "--action-l2", "1.0"]) == 1
    rows = rows_of(capsys.readouterr().out)
    assert all(r.endswith(" OK") for r in rows if r.startswith("L_Q "))
    assert any(r.endswith(" FAIL") for r in rows if r.startswith("J "))


def test_actor_objective_with_the_penalty_matches_finite_differences():
    agent, batch, _ = gradcheck_command.random_setup(3, 2, [8, 8], 6, seed=2, action_l2=0.8)
    rows = gc.check_objective(gc.actor_objective(agent, batch))
    assert all(r["ok"] for r in rows), rows


# ---------------------------------------------------------------------------------------------
# Random actions in exploration
# ---------------------------------------------------------------------------------------------

def constant_policy(act_dim=3):
    """A Policy whose actor outputs 0 (zero weights): mu(s) = mid."""
    sizes = [2, 4, act_dim]
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    low, high = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 4.0, 3.0])
    return Policy(np.zeros(n, np.float32), sizes, ((high + low) / 2).astype(np.float32),
                  ((high - low) / 2).astype(np.float32), low, high)


def test_random_eps_zero_draws_nothing_more():
    policy, obs = constant_policy(), np.zeros((4, 2))
    noises = [GaussianNoise(3, 0.2) for _ in range(4)]
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    out_a, out_b = np.zeros((4, 3), np.float32), np.zeros((4, 3), np.float32)
    policy.explore(obs, noises, a, out_a)
    policy.explore(obs, noises, b, out_b, 0.0)
    np.testing.assert_array_equal(out_a, out_b)
    assert a.bit_generator.state == b.bit_generator.state


def test_random_eps_one_acts_uniformly_after_drawing_the_noise():
    policy, obs = constant_policy(), np.zeros((2, 2))
    noises = [GaussianNoise(3, 0.2) for _ in range(2)]
    rng, replay = np.random.default_rng(9), np.random.default_rng(9)
    out = policy.explore(obs, noises, rng, np.zeros((2, 3), np.float32), 1.0)
    for i in range(2):                       # per row: the noise, the coin, the uniforms
        replay.standard_normal(3)
        assert replay.random() < 1.0
        r = replay.random(3)
        np.testing.assert_array_equal(out[i], (policy.low + (policy.high - policy.low) * r)
                                      .astype(np.float32))
    assert rng.bit_generator.state == replay.bit_generator.state


def test_random_eps_is_the_fraction_of_random_actions():
    policy = constant_policy()
    rng, n = np.random.default_rng(0), 20_000
    noises = [NoNoise(3)] * 100
    random_rows = 0
    for _ in range(n // 100):
        out = policy.explore(np.zeros((100, 2)), noises, rng, np.zeros((100, 3), np.float32),
                             0.3)
        random_rows += int(np.sum(np.any(out != policy.mid, axis=1)))
        assert np.all((out >= policy.low) & (out <= policy.high))
    assert abs(random_rows / n - 0.3) < 0.015              # ~4.6 standard errors


HP_RUN = dict(hidden_sizes=(8,), steps_per_epoch=400, start_steps=200, update_after=200,
              update_every=25, batch_size=16, replay_size=10_000, num_test_episodes=1,
              checkpoint_every=200, seed=7, random_eps=0.5, action_l2=1.0, clip_return=True)


@pytest.mark.parametrize("cls", [DDPG, TD3])
def test_a_run_with_the_settings_saves_loads_and_continues_identically(tmp_path, cls):
    a = cls("Pendulum-v1", log=False, **HP_RUN)
    a.learn(600, progress_bar=False)            # 3 Pendulum episodes: a boundary
    b = cls.load(a.save(tmp_path / "model.npz"))
    assert b.hyperparameters == a.hyperparameters and b.agent.config() == a.agent.config()
    a.learn(800, progress_bar=False)
    b.learn(800, progress_bar=False)
    sa, sb = a.agent.state_dict(), b.agent.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert np.array_equal(a.buffer.act, b.buffer.act)


def test_random_actions_change_the_run_only_when_on():
    base = dict(HP_RUN, random_eps=0.0, action_l2=0.0, clip_return=False)
    runs = [DDPG("Pendulum-v1", log=False, **dict(base, random_eps=eps)) for eps in (0.0, 0.3)]
    for run in runs:
        run.learn(400, progress_bar=False)
    same = runs[0].buffer.act[:200] == runs[1].buffer.act[:200]      # start_steps: uniform
    assert same.all()
    assert not np.array_equal(runs[0].buffer.act[200:400], runs[1].buffer.act[200:400])


# ---------------------------------------------------------------------------------------------
# The presets
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["FetchReach-v4", "FetchPush-v4"])
def test_fetch_presets_use_the_papers_settings(env):
    preset = preset_for(env)
    assert (preset["action_l2"], preset["clip_return"], preset["random_eps"]) == (1.0, True, 0.3)
