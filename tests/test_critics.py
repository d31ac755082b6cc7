"""Any number of critics (n_critics, DDPG and TD3) and networks without a hidden layer (linear):
the fused kernels against the plain-NumPy twin, the target's minimum, the files, and the native
and command-line interfaces (each critic's gradient check: tests/test_gradcheck.py).

Tolerance (float64), as in test_agents.py: PATHS 1e-12 absolute between the kernels and the
twin (the same sums in other orders).
"""
import json

import numpy as np
import pytest

import numddpg
from numddpg.engine.agents import (DDPGAgent, TD3Agent, agent_array_specs, check_agent_config,
                                   load_agent, save_agent, state_layout_for)
from numddpg.files.checkpoint import CheckpointError
from numddpg.files.policy import NumpyPolicy, save_policy
from numddpg.kernels import reference as ref
from numddpg.tools import cli

from helpers import random_batch, small_agent

PATHS = 1e-12
AGENTS = {"ddpg": DDPGAgent, "td3": TD3Agent}


def state_error(a, b):
    """max |a - b| over every array of two agents' states."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    return max(float(np.max(np.abs(sa[k].astype(float) - sb[k].astype(float)))) for k in sa)


# --- the kernels against the twin ----------------------------------------------------------------

@pytest.mark.parametrize("algo", AGENTS)
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("hidden, chunks", [((6, 5), 1), ((), 3)])
def test_fused_update_equals_the_twin_for_n_critics(algo, n, hidden, chunks, rng):
    """update (the jitted kernel, C chunks) and update_stepwise (reference.ddpg_update /
    td3_update) from the same state, four updates on fresh minibatches: every array of the state
    and every statistic within PATHS.  TD3's policy delay 2 covers updates with and without an
    actor step."""
    fused, twin = (small_agent(AGENTS[algo], hidden=hidden, n_critics=n, chunks=chunks, seed=4)
                   for _ in range(2))
    assert len(fused.state_dict()) == 6 + 4 * n           # actor, 4 per critic, rng, counters
    for _ in range(4):
        batch = random_batch(rng, fused, 7)
        got, want = fused.update(*batch), twin.update_stepwise(*batch)
        for key in ("loss_q", "q_mean", "q_std"):
            assert abs(got[key] - want[key]) <= PATHS * max(1.0, abs(want[key])), key
        assert np.isnan(got["loss_pi"]) == np.isnan(want["loss_pi"])
    assert state_error(fused, twin) <= PATHS
    if n > 1:                                             # the critics are different networks
        assert not np.array_equal(fused.critics[0].params, fused.critics[-1].params)


@pytest.mark.parametrize("algo", AGENTS)
def test_every_critics_adam_takes_the_agents_adam_options(algo, rng):
    """Weight decay (Adam's L2 here) and other betas reach each of three critics' Adam steps
    alike: the kernel and the twin agree within PATHS."""
    kw = dict(n_critics=3, weight_decay=0.05, decoupled_weight_decay=False, adam_beta1=0.8)
    fused, twin = (small_agent(AGENTS[algo], seed=6, **kw) for _ in range(2))
    for _ in range(3):
        batch = random_batch(rng, fused, 6)
        fused.update(*batch)
        twin.update_stepwise(*batch)
    assert state_error(fused, twin) <= PATHS


def test_the_target_is_the_minimum_over_the_target_critics(rng):
    """reference.min_q_target is the per-row minimum of every target critic's value (one
    critic: its value itself); the kernel's y (work.y after an update) is r + gamma (1 - d)
    that minimum, so lowering one target critic's output bias lowers y where it is the least."""
    agent = small_agent(DDPGAgent, n_critics=3, seed=2)
    obs, act, rew, obs2, done = random_batch(rng, agent, 9)
    agent.critics_targ[2].params[-1] -= 0.3               # critic 3's target: 0.3 lower
    a2, _, _ = ref.actor_action(agent.actor_targ.params, agent.actor.sizes, agent.mid, agent.half,
                                obs2)
    qs = [ref.critic_value(c.params, agent.critic.sizes, obs2, a2)[0] for c in agent.critics_targ]
    np.testing.assert_array_equal(
        ref.min_q_target([c.params for c in agent.critics_targ], agent.critic.sizes, obs2, a2),
        np.minimum.reduce(qs))
    np.testing.assert_array_equal(
        ref.min_q_target(agent.critics_targ[1].params, agent.critic.sizes, obs2, a2), qs[1])
    want = rew + agent.gamma * (1 - done) * np.minimum.reduce(qs)
    agent.update(obs, act, rew, obs2, done)
    _, work, _ = agent._buffers(9)
    np.testing.assert_allclose(work.y, want, rtol=0, atol=1e-12)   # (summation order only)


def test_gradients_names_every_critic(rng):
    agent = small_agent(TD3Agent, n_critics=3)
    agent.update(*random_batch(rng, agent, 5))
    grads = agent.gradients()
    assert list(grads) == ["actor", "critic", "critic2", "critic3"]
    assert grads["critic3"].shape == agent.critic3.params.shape and np.any(grads["critic3"])


# --- files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("algo, n, hidden", [("ddpg", 3, (4,)), ("td3", 1, ())])
def test_agent_files_hold_every_critic(tmp_path, algo, n, hidden, rng):
    agent = small_agent(AGENTS[algo], hidden=hidden, n_critics=n)
    agent.update(*random_batch(rng, agent, 4))
    save_agent(tmp_path / "a.npz", agent)
    back = load_agent(tmp_path / "a.npz")
    assert back.n_critics == n and back.config() == agent.config()
    assert state_error(back, agent) == 0
    assert list(agent_array_specs(agent.config())) == [*state_layout_for(n), "counters"]


def test_the_layout_of_n_critics_keeps_the_names_of_one_and_two():
    assert list(state_layout_for(1)) == list(DDPGAgent.state_layout)
    assert list(state_layout_for(2)) == list(TD3Agent.state_layout)
    three = state_layout_for(3)
    assert list(three)[-4:] == ["critic3", "critic3_targ", "q3_m", "q3_v"]
    assert [three[k].symbol for k in ("critic", "critic3_targ", "q2_v")] == ["phi1", "phi3_targ",
                                                                              "v_q2"]
    assert state_layout_for(1)["critic"].symbol == "phi"


@pytest.mark.parametrize("value", [0, 11, None, 2.5, 2.0, "2", True, [2]])
def test_a_file_with_a_bad_number_of_critics_is_refused_in_one_line(value):
    cfg = small_agent(TD3Agent).config()
    cfg["n_critics"] = value              # (2.0: JSON would not write it back as it was read)
    with pytest.raises(CheckpointError, match=r"n_critics") as err:
        check_agent_config(cfg, "f.npz")
    assert "\n" not in str(err.value)


def test_a_config_without_n_critics_is_the_algorithms_own():
    for cls in AGENTS.values():
        cfg = small_agent(cls).config()
        del cfg["n_critics"]                          # a file written before n_critics existed
        check_agent_config(cfg, "old.npz")
        assert len(agent_array_specs(cfg)) == 6 + 4 * cls.n_critics


def test_a_linear_policy_file_acts_as_the_agent(tmp_path, rng):
    """tanh(s W + b) scaled to the box, by the NumPy-only reader as by the agent."""
    agent = small_agent(DDPGAgent, hidden=())
    agent.update(*random_batch(rng, agent, 4))
    assert agent.actor.sizes == (3, 2) and len(agent.actor.weights) == 1
    save_policy(tmp_path / "p.npz", agent.actor.params, agent.actor.sizes, agent.mid, agent.half,
                agent.act_low, agent.act_high, act_dtype="float64")
    policy = numddpg.load_policy(tmp_path / "p.npz")
    assert isinstance(policy, NumpyPolicy)
    obs = rng.standard_normal((5, 3))
    W, b = agent.actor.weights[0], agent.actor.biases[0]
    want = agent.mid + agent.half * np.tanh(obs @ W + b)
    np.testing.assert_allclose(policy(obs), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(agent.act(obs), want, rtol=0, atol=1e-12)


# --- the native algorithms and the command line -----------------------------------------------

TINY = dict(steps_per_epoch=200, start_steps=50, update_after=50, batch_size=16,
            num_test_episodes=0, seed=0, log=False)


def test_native_td3_with_three_critics_and_linear_networks_saves_and_resumes(tmp_path):
    model = numddpg.TD3("Pendulum-v1", hidden_sizes=(), n_critics=3, **TINY)
    assert model.hyperparameters["n_critics"] == 3 == model.agent.n_critics
    model.learn(100, progress_bar=False)
    model.save(tmp_path / "m.npz")
    back = numddpg.TD3.load(tmp_path / "m.npz")
    assert back.agent.n_critics == 3 and back.agent.actor.sizes == (3, 1)
    assert state_error(back.agent, model.agent) == 0
    back.learn(30, progress_bar=False)
    model.learn(30, progress_bar=False)
    assert state_error(back.agent, model.agent) == 0       # trains on identically


def test_the_command_line_takes_n_critics_and_no_hidden_layer(tmp_path, capsys):
    assert cli.main(["train", "--algo", "ddpg", "--total-steps", "120", "--hidden",
                     "--n-critics", "2", "--start-steps", "50", "--update-after", "50",
                     "--batch-size", "8", "--steps-per-epoch", "60", "--num-test-episodes",
                     "0", "--no-baseline", "--quiet", "--out", str(tmp_path / "run")]) == 0
    hp = json.loads((tmp_path / "run" / "config.json").read_text())["hyperparameters"]
    assert hp["hidden_sizes"] == [] and hp["n_critics"] == 2
    assert numddpg.load_policy(tmp_path / "run").layer_sizes == (3, 1)
