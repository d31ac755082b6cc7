"""numddpg.engine.agents.DDPGAgent: the fused update against the step-by-step path and the plain-NumPy
twin, its gradients against finite differences, the burst kernel against single updates, and
input validation.

Tolerances (float64):

PATHS 1e-12 absolute on parameters and moments (all are O(1) or smaller), 1e-12 relative on
      losses.  Fused kernel, stepwise path and reference compute the same sums in different
      orders (~1e-16 relative).  Adam's first steps divide by sqrt(v_hat) + eps, which can
      magnify a rounding difference in a gradient element that is itself ~eps in size by up to
      lr / eps; over a few updates the differences stay ~1e-14, far below 1e-12.  A wrong term
      anywhere moves a parameter by ~lr = 1e-3 (Adam's steps are ~lr whatever the gradient).
FD    1e-6 relative error (gradcheck.rel_error) against centred differences with h = 1e-6
      (truncation ~1e-12, rounding ~1e-10 relative), per weight/bias tensor; examples with a
      ReLU input within 1e-4 of its kink are rejected with ``assume``.
FD_ABS  1e-9 absolute: the rounding floor of a centred difference is ~eps_mach * |loss terms|
      / h ~ 2e-10 for terms of size ~1 (measured: 2e-11).  A tensor whose gradients are all tiny
      (~1e-5: a narrow action range, a one-unit layer, a saturated tanh) cannot be checked to
      1e-6 *relative* error through that floor, so a tensor passes if its relative error is
      <= FD *or* its absolute error is <= FD_ABS.  For gradients above ~1e-3 the absolute bound
      is the stricter one, so this only relaxes the check where rounding dominates.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from numddpg.kernels import reference as ref
from numddpg.kernels import rng as nrng
from numddpg.engine.agents import (AGENT_CLASSES, AGENT_OPTIONAL_KEYS, DDPGAgent, TD3Agent,
                                   agent_array_specs)
from numddpg.kernels.gradcheck import (KINK_MARGIN, actor_objective, critic_objective, directional_check,
                                       numeric_grad, rel_error, tensor_names)

PATHS = 1e-12
FD = 1e-6
FD_ABS = 1e-9
H = 1e-6

from helpers import fake_buffer, random_batch, small_agent  # noqa: E402

# --- helpers -----------------------------------------------------------------------------------

def make_agent(*args, **kw):
    """A small float64 DDPGAgent with asymmetric bounds (tests/helpers.py)."""
    return small_agent(DDPGAgent, *args, **kw)


def ref_state(agent):
    """The agent's state as numddpg.kernels.reference.ddpg_update's dict (copies)."""
    return {"theta": agent.actor.params.copy(), "phi": agent.critic.params.copy(),
            "theta_targ": agent.actor_targ.params.copy(),
            "phi_targ": agent.critic_targ.params.copy(),
            "m_pi": agent.pi_optim.m.copy(), "v_pi": agent.pi_optim.v.copy(),
            "m_q": agent.q_optim.m.copy(), "v_q": agent.q_optim.v.copy(),
            "t_pi": agent.pi_optim.t, "t_q": agent.q_optim.t}


def ref_update(agent, state, batch):
    return ref.ddpg_update(state, batch, agent.actor.sizes, agent.critic.sizes, agent.mid,
                           agent.half, agent.gamma, agent.polyak, agent.pi_lr, agent.q_lr)


def assert_state_close(a, b, atol=PATHS):
    """Two reference-style state dicts agree: every array to atol, step counts exactly."""
    for k in a:
        if k.startswith("t_"):
            assert a[k] == b[k], k
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


def assert_info_close(info, expected, rtol=PATHS):
    for k in ("loss_q", "loss_pi", "q_mean"):
        assert info[k] == pytest.approx(float(expected[k]), rel=rtol, abs=1e-15), k
    # The kernel's std is sqrt(E[q^2] - mean^2) in one pass: the difference carries a rounding
    # error of ~4 eps mean^2, so the std is only good to ~sqrt(4 eps) |mean| = 3e-8 |mean| in
    # absolute terms (seen: a one-unit critic whose Q is constant over the batch reports
    # 5e-9 instead of 0).  Bound: 1e-9 relative or 6e-8 |mean| absolute.
    assert info["q_std"] == pytest.approx(float(expected["q_std"]), rel=1e-9,
                                          abs=6e-8 * abs(float(expected["q_mean"])) + 1e-15)


def check_fd(obj, x, seed):
    """FD check of an Objective at x, per tensor and along one random direction.

    Returns {name: (relative error, absolute error)} for the tensors (and 'directional') that
    fail both bounds FD and FD_ABS (module docstring): empty when the gradient is right.
    """
    analytic = obj.grad(x)
    numeric = numeric_grad(obj.f, x.copy(), H)
    errs = {name: (rel_error(analytic[sl], numeric[sl]), np.abs(analytic[sl] - numeric[sl]).max())
            for name, sl, _ in tensor_names(obj.sizes)}
    # directional check of the whole flat vector (step 1e-5: see gradcheck.check_objective)
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(x.shape[0])
    t /= np.linalg.norm(t)
    fd = (obj.f(x + 1e-5 * t) - obj.f(x - 1e-5 * t)) / 2e-5
    errs["directional"] = (directional_check(obj.f, analytic, x, np.random.default_rng(seed),
                                             1e-5), abs(float(analytic @ t) - fd))
    return {k: e for k, e in errs.items() if e[0] > FD and e[1] > FD_ABS}


# --- construction ----------------------------------------------------------------------------

def test_targets_start_as_exact_copies():
    agent = make_agent()
    for net, targ in ((agent.actor, agent.actor_targ), (agent.critic, agent.critic_targ)):
        np.testing.assert_array_equal(targ.params, net.params)     # exact copies ...
        assert not np.shares_memory(targ.params, net.params)       # ... not aliases
        assert targ.sizes == net.sizes and targ.output == net.output
    assert agent.actor.sizes == (3, 8, 8, 2) and agent.actor.output == "tanh"
    assert agent.critic.sizes == (5, 8, 8, 1) and agent.critic.output == "identity"
    np.testing.assert_array_equal(agent.mid, [-0.5, 1.25])           # (high + low) / 2
    np.testing.assert_array_equal(agent.half, [1.5, 1.75])           # (high - low) / 2


def test_same_seed_same_agent():
    a, b = make_agent(seed=11), make_agent(seed=11)
    np.testing.assert_array_equal(a.actor.params, b.actor.params)
    np.testing.assert_array_equal(a.critic.params, b.critic.params)
    np.testing.assert_array_equal(a.rng_state, b.rng_state)
    assert not np.array_equal(a.actor.params, make_agent(seed=12).actor.params)


@pytest.mark.parametrize("cls", [DDPGAgent, TD3Agent])
def test_the_class_data_is_the_agents_state_and_config(cls):
    """Files know an algorithm only by its class's data (state_layout, counter_names,
    config_keys): that data must describe what an agent of the class holds and records."""
    assert AGENT_CLASSES[cls.algo] is cls
    agent = small_agent(cls)
    state = agent.state_dict()
    assert list(state) == [*cls.state_layout, "counters"]          # the order files hold
    assert agent_array_specs(agent.config()) == {k: (v.dtype.name, v.shape)
                                                 for k, v in state.items()}
    assert len(cls.counter_names) == len(state["counters"]) == len(agent._t)
    assert list(agent.config()) == [k for k in cls.config_keys if k in DDPGAgent.config_keys] \
        + list(AGENT_OPTIONAL_KEYS) + [k for k in cls.config_keys if k not in DDPGAgent.config_keys]


# --- the three paths agree -----------------------------------------------------------------------

def test_fused_stepwise_and_reference_agree_over_consecutive_updates(rng):
    fused, stepwise = make_agent(seed=3), make_agent(seed=3)
    state = ref_state(fused)
    for B in (5, 5, 3, 8, 1, 8):             # batch sizes vary: the workspaces grow and shrink
        batch = random_batch(rng, fused, B)
        info_f = fused.update(*batch)
        info_s = stepwise.update_stepwise(*batch)
        state, info_r = ref_update(fused, state, batch)
        # PATHS tolerance (module docstring) for all four networks, moments and losses
        assert_state_close(ref_state(fused), state)
        assert_state_close(ref_state(stepwise), state)
        assert_info_close(info_f, info_r)
        assert_info_close(info_s, info_r)
    assert fused.pi_optim.t == fused.q_optim.t == 6


ADAM_OPTIONS = [dict(weight_decay=0.3), dict(weight_decay=0.3, decoupled_weight_decay=False),
                dict(adam_beta1=0.5, adam_beta2=0.99, adam_eps=1e-4)]


@pytest.mark.parametrize("cls", [DDPGAgent, TD3Agent])
@pytest.mark.parametrize("options", ADAM_OPTIONS)
def test_adam_options_in_the_update_equal_the_twin(cls, options, rng):
    """Weight decay (AdamW's, Adam's L2) and other betas and eps reach the fused update (chunks
    split Adam's ranges too) and the twin alike: PATHS over four updates, whose parameters
    differ from the default options' by far more (the options are not ignored)."""
    fused = small_agent(cls, seed=3, chunks=2, **options)
    stepwise, plain = small_agent(cls, seed=3, **options), small_agent(cls, seed=3)
    for _ in range(4):
        batch = random_batch(rng, fused, 6)
        stepwise.rng_state[:] = plain.rng_state[:] = fused.rng_state   # TD3's smoothing draws
        fused.update(*batch)
        stepwise.update_stepwise(*batch)
        plain.update(*batch)
    for name, ours in fused.state_dict().items():
        np.testing.assert_allclose(ours, stepwise.state_dict()[name], rtol=0, atol=PATHS,
                                   err_msg=name)
    assert np.abs(fused.actor.params - plain.actor.params).max() > 1e-6
    assert {k: fused.config()[k] for k in options} == options


def test_learning_rates_change_between_updates_as_set(rng):
    """set_learning_rates changes the step size of the next updates (the twin follows), not
    the config; lr 0 leaves the parameters where they are (the moments still move)."""
    agent, twin = make_agent(seed=4), make_agent(seed=4)
    agent.set_learning_rates(3e-4, 2e-3)
    twin.set_learning_rates(3e-4, 2e-3)
    batch = random_batch(rng, agent, 6)
    agent.update(*batch)
    state = ref_state(twin)
    state, _ = ref.ddpg_update(state, batch, twin.actor.sizes, twin.critic.sizes, twin.mid,
                               twin.half, twin.gamma, twin.polyak, 3e-4, 2e-3)
    assert_state_close(ref_state(agent), state)
    assert agent.learning_rates == (3e-4, 2e-3) and (agent.pi_lr, agent.q_lr) == (1e-3, 1e-3)
    agent.set_learning_rates(0.0, 0.0)
    before = agent.actor.params.copy(), agent.critic.params.copy(), agent.q_optim.m.copy()
    agent.update(*random_batch(rng, agent, 6))
    np.testing.assert_array_equal(agent.actor.params, before[0])
    np.testing.assert_array_equal(agent.critic.params, before[1])
    assert not np.array_equal(agent.q_optim.m, before[2])
    for bad in (-1e-3, np.nan, np.inf, True, "1e-3"):
        with pytest.raises(ValueError, match="pi_lr must be a finite number >= 0"):
            agent.set_learning_rates(bad, 1e-3)


def test_fused_kernel_gradients_are_the_losses_gradients(rng):
    """The gradients the fused kernel leaves in its workspaces are dL_Q/dphi at the critic
    before its step and dJ/dtheta with the critic *after* its step (held constant)."""
    agent, before = make_agent(seed=5), make_agent(seed=5)
    for _ in range(2):                       # warm up both identically
        batch = random_batch(rng, agent, 6)
        agent.update(*batch)
        before.update(*batch)
    batch = random_batch(rng, agent, 6)
    critic = critic_objective(before, batch)
    agent.update(*batch)
    # before: critic as it was; its critic params are then replaced by the stepped ones.
    before.critic.params[:] = agent.critic.params
    actor = actor_objective(before, batch)
    # Same kernels and arithmetic, different call sites: PATHS-level agreement (relative).
    assert rel_error(agent.gradients()["critic"], critic.grad(critic.x0)) < PATHS
    assert rel_error(agent.gradients()["actor"], actor.grad(actor.x0)) < PATHS


def test_terminal_transitions_do_not_bootstrap(rng):
    """d = 1: y = r whatever s' is; d = 0 (including time-limit truncation): y uses s'."""
    batch = random_batch(rng, make_agent(), 4)
    other_obs2 = rng.standard_normal(batch[3].shape)
    for done, same in ((np.ones(4), True), (np.zeros(4), False)):
        a, b = make_agent(seed=2), make_agent(seed=2)
        a.update(batch[0], batch[1], batch[2], batch[3], done)
        b.update(batch[0], batch[1], batch[2], other_obs2, done)
        # gamma (1 - d) Q_targ(s', .) is exactly 0 when d = 1, so the runs are bit-identical.
        assert np.array_equal(a.critic.params, b.critic.params) == same


# --- hypothesis: drawn shapes and bounds ---------------------------------------------------------

@st.composite
def agent_cases(draw):
    """obs_dim 1-5, act_dim 1-3, 1-3 hidden layers of width 1-16, batch 1-8, asymmetric bounds
    low in [-3, 1], high = low + [0.1, 4], and a seed for every value."""
    obs_dim = draw(st.integers(1, 5))
    act_dim = draw(st.integers(1, 3))
    hidden = draw(st.lists(st.integers(1, 16), min_size=1, max_size=3))
    batch = draw(st.integers(1, 8))
    low = np.array(draw(st.lists(st.floats(-3.0, 1.0), min_size=act_dim, max_size=act_dim)))
    width = np.array(draw(st.lists(st.floats(0.1, 4.0), min_size=act_dim, max_size=act_dim)))
    seed = draw(st.integers(0, 2**32 - 1))
    return obs_dim, act_dim, hidden, batch, low, low + width, seed


def build_case(case):
    """The agent after one warm-up update (targets differ, Adam has moved) and a fresh batch."""
    obs_dim, act_dim, hidden, B, low, high, seed = case
    agent = make_agent(obs_dim, act_dim, hidden, low, high, seed=seed)
    rng = np.random.default_rng(seed)
    agent.update(*random_batch(rng, agent, B))
    return agent, random_batch(rng, agent, B)


@given(agent_cases())
def test_critic_gradient_equals_finite_differences(case):
    agent, batch = build_case(case)
    obj = critic_objective(agent, batch)
    assume(obj.margin(obj.x0) > KINK_MARGIN)
    assert check_fd(obj, obj.x0, case[-1]) == {}     # FD and FD_ABS, module docstring


@given(agent_cases())
def test_actor_gradient_through_critic_equals_finite_differences(case):
    agent, batch = build_case(case)
    obj = actor_objective(agent, batch)
    assume(obj.margin(obj.x0) > KINK_MARGIN)
    assert check_fd(obj, obj.x0, case[-1]) == {}


@given(agent_cases())
def test_update_equals_reference_and_actor_step_leaves_critic_alone(case):
    agent, batch = build_case(case)
    state = ref_state(agent)
    info = agent.update(*batch)
    new, info_r = ref_update(agent, state, batch)
    assert_state_close(ref_state(agent), new)               # PATHS
    assert_info_close(info, info_r)
    # The critic after the whole update is the critic after the critic step alone: the actor
    # step (which backpropagates through the critic) applied nothing to phi.
    y = ref.td_target(state["theta_targ"], state["phi_targ"], agent.actor.sizes,
                      agent.critic.sizes, agent.mid, agent.half, agent.gamma, batch[2], batch[3],
                      batch[4])
    _, dphi, _ = ref.critic_loss_and_grad(state["phi"], agent.critic.sizes, batch[0], batch[1], y)
    phi_after_critic_step, _, _ = ref.adam(state["phi"], dphi, state["m_q"], state["v_q"],
                                           state["t_q"] + 1, agent.q_lr)
    np.testing.assert_allclose(agent.critic.params, phi_after_critic_step, rtol=0, atol=PATHS)
    np.testing.assert_allclose(agent.critic_targ.params,
                               ref.polyak(state["phi_targ"], phi_after_critic_step, agent.polyak),
                               rtol=0, atol=PATHS)


# --- the burst kernel ----------------------------------------------------------------------------

def test_update_burst_equals_sequential_updates(rng):
    K, B = 4, 6
    burst, single = make_agent(seed=9), make_agent(seed=9)
    buf = fake_buffer(rng, burst, capacity=50, size=37)
    # The indices numddpg.kernels.rng draws from a copy of the agent's generator state: K batches of B.
    state = burst.rng_state.copy()
    batches = []
    for _ in range(K):
        idx = np.array([nrng.randint(state, buf.size) for _ in range(B)])
        assert idx.max() < buf.size
        batches.append(tuple(np.asarray(arr[idx], np.float64) for arr in
                             (buf.obs, buf.act, buf.rew, buf.obs2, buf.done)))
    stats = burst.update_burst(buf, B, K)
    infos = [single.update(*b) for b in batches]
    assert stats.shape == (K, 4) and np.all(np.isfinite(stats))
    np.testing.assert_array_equal(burst.rng_state, state)          # K * B draws, no more
    # Same fused kernel on the same rows: equal up to BLAS rounding (PATHS).
    for name in ("actor", "critic", "actor_targ", "critic_targ"):
        np.testing.assert_allclose(getattr(burst, name).params, getattr(single, name).params,
                                   rtol=0, atol=PATHS, err_msg=name)
    np.testing.assert_allclose(burst.q_optim.v, single.q_optim.v, rtol=0, atol=PATHS)
    assert burst.pi_optim.t == burst.q_optim.t == K
    for k, info in enumerate(infos):
        np.testing.assert_allclose(stats[k], [info["loss_q"], info["loss_pi"], info["q_mean"],
                                              info["q_std"]], rtol=PATHS, atol=1e-15)


def test_update_burst_rejects_empty_buffer(rng):
    agent = make_agent()
    buf = fake_buffer(rng, agent, capacity=4, size=0)
    with pytest.raises(ValueError, match="empty replay buffer"):
        agent.update_burst(buf, 2, 1)


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"obs_dim": 0}, r"obs_dim must be a positive integer, got 0"),
    ({"obs_dim": -3}, r"obs_dim must be a positive integer, got -3"),
    ({"obs_dim": 2.5}, r"obs_dim must be a positive integer, got 2.5"),
    ({"act_dim": 0}, r"act_dim must be a positive integer, got 0"),
    ({"low": 1.0, "high": 1.0}, r"act_low must be < act_high .* got act_low=\[1. 1.\]"),
    ({"low": (0.0, 2.0), "high": (1.0, 1.0)}, r"act_low must be < act_high .*act_high=\[1. 1.\]"),
    ({"low": -np.inf, "high": 1.0}, r"action bounds must be finite, got act_low=\[-inf -inf\]"),
    ({"low": -1.0, "high": np.nan}, r"action bounds must be finite.*act_high=\[nan nan\]"),
    ({"polyak": -0.1}, r"polyak must lie in \[0, 1\], got -0.1"),
    ({"polyak": 1.5}, r"polyak must lie in \[0, 1\], got 1.5"),
    ({"polyak": np.nan}, r"polyak must lie in \[0, 1\], got nan"),
    ({"gamma": 1.01}, r"gamma must lie in \[0, 1\], got 1.01"),
    ({"gamma": -1}, r"gamma must lie in \[0, 1\], got -1"),
    ({"pi_lr": 0.0}, r"pi_lr must be a positive finite number, got 0.0"),
    ({"q_lr": -1e-3}, r"q_lr must be a positive finite number, got -0.001"),
    ({"pi_lr": np.inf}, r"pi_lr must be a positive finite number, got inf"),
    ({"weight_decay": -0.1}, r"weight_decay must be a finite number >= 0.0, got -0.1"),
    ({"decoupled_weight_decay": 1}, r"decoupled_weight_decay must be True or False"),
    ({"adam_beta1": 1.0}, r"adam_beta1 must be a finite number in \[0.0, 1.0\), got 1.0"),
    ({"adam_beta2": -0.5}, r"adam_beta2 must be a finite number in \[0.0, 1.0\), got -0.5"),
    ({"adam_eps": 0.0}, r"adam_eps must be a positive finite number, got 0.0"),
    ({"hidden": "64"}, r"hidden_sizes must be a sequence of positive integers"),
    ({"n_critics": 0}, r"n_critics must be an integer from 1 to 10, got 0"),
    ({"n_critics": 11}, r"n_critics must be an integer from 1 to 10, got 11"),
    ({"n_critics": 1.5}, r"n_critics must be an integer from 1 to 10, got 1.5"),
    ({"hidden": (4, 0)}, r"hidden_sizes must all be positive.*\[0\]"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
    args = {"obs_dim": 3, "act_dim": 2, "low": -1.0, "high": 1.0, "hidden": (4,)}
    args.update(kwargs)
    o, a, lo, hi, h = (args.pop(k) for k in ("obs_dim", "act_dim", "low", "high", "hidden"))
    with pytest.raises(ValueError, match=match):
        DDPGAgent(o, a, lo, hi, hidden_sizes=h, **args)


def test_constructor_rejects_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int64"):
        DDPGAgent(3, 2, -1, 1, dtype=np.int64)


def _bad_batches(rng, agent):
    """(description, batch, regex) triples of malformed minibatches of B = 4."""
    good = random_batch(rng, agent, 4)

    def swap(i, value):
        b = list(good)
        b[i] = value
        return tuple(b)

    nan_rew = good[2].copy()
    nan_rew[2] = np.nan
    inf_obs2 = good[3].copy()
    inf_obs2[1, 0] = np.inf
    return [
        (swap(0, np.zeros((4, 4))), r"obs must have shape \(4, 3\).*got \(4, 4\)"),
        (swap(0, np.zeros(3)), r"obs must have shape \(batch, 3\) with batch >= 1, got \(3,\)"),
        (swap(0, np.zeros((0, 3))), r"batch >= 1, got \(0, 3\)"),
        (swap(1, np.zeros((4, 3))), r"act must have shape \(4, 2\).*got \(4, 3\)"),
        (swap(2, np.zeros((4, 1))), r"rew must have shape \(4,\).*got \(4, 1\)"),
        (swap(3, np.zeros((5, 3))), r"obs2 must have shape \(4, 3\).*got \(5, 3\)"),
        (swap(4, np.zeros(3)), r"done must have shape \(4,\).*got \(3,\)"),
        (swap(2, nan_rew), r"rew has a non-finite value nan at index \(2,\)"),
        (swap(3, inf_obs2), r"obs2 has a non-finite value inf at index \(1, 0\)"),
    ]


@pytest.mark.parametrize("method", ["update", "update_stepwise"])
def test_bad_batches_raise_and_leave_the_agent_alone(method, rng):
    agent = make_agent()
    before = ref_state(agent)
    for batch, match in _bad_batches(rng, agent):
        with pytest.raises(ValueError, match=match):
            getattr(agent, method)(*batch)
    after = ref_state(agent)
    for k in before:                           # nothing moved, bit for bit
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


# --- acting ----------------------------------------------------------------------------------

def test_act_shapes_values_and_bounds(rng):
    agent = make_agent(obs_dim=4, act_dim=3, low=(-2.0, 0.0, 5.0), high=(-1.0, 3.0, 9.0))
    obs = rng.standard_normal((7, 4)) * 3
    u, _ = ref.mlp_forward(agent.actor.params, agent.actor.sizes, "tanh", obs)
    expected = agent.mid + agent.half * u
    a = agent.act(obs)
    assert a.shape == (7, 3)
    np.testing.assert_allclose(a, expected, rtol=0, atol=1e-12)   # kernel vs twin, float64
    one = agent.act(obs[2])
    assert one.shape == (3,)
    np.testing.assert_allclose(one, expected[2], rtol=0, atol=1e-12)
    assert np.all(a >= agent.act_low) and np.all(a <= agent.act_high)


def test_act_noise_is_clipped_and_reproducible(rng):
    agent = make_agent(obs_dim=4, act_dim=3, low=(-2.0, 0.0, 5.0), high=(-1.0, 3.0, 9.0))
    obs = rng.standard_normal((200, 4))
    noisy = agent.act(obs, noise_scale=3.0, rng=np.random.default_rng(1))
    assert np.all(noisy >= agent.act_low) and np.all(noisy <= agent.act_high)
    # With noise std 3 half-ranges, many draws leave the box and are clipped onto its faces.
    assert np.any(noisy == agent.act_low) and np.any(noisy == agent.act_high)
    np.testing.assert_array_equal(noisy, agent.act(obs, noise_scale=3.0,
                                                   rng=np.random.default_rng(1)))
    np.testing.assert_array_equal(agent.act(obs, noise_scale=0.0), agent.act(obs))


def test_act_rejects_wrong_obs_shape():
    agent = make_agent()
    for bad in (np.zeros(4), np.zeros((2, 4)), np.zeros((2, 3, 1))):
        with pytest.raises(ValueError, match=rf"obs must have shape \(3,\) or \(batch, 3\), got "
                                             rf"{re_shape(bad)}"):
            agent.act(bad)


def re_shape(a):
    return str(a.shape).replace("(", r"\(").replace(")", r"\)")


# --- float32 ---------------------------------------------------------------------------------

def test_float32_agent_tracks_float64(rng):
    a32 = DDPGAgent(3, 2, (-2.0, -0.5), (1.0, 3.0), hidden_sizes=(16, 16), dtype=np.float32,
                    seed=4)
    a64 = make_agent(hidden=(16, 16), seed=4, polyak=0.995)
    batch = random_batch(rng, a64, 8)
    i32, i64 = a32.update(*batch), a64.update(*batch)
    for net in ("actor", "critic", "actor_targ", "critic_targ"):
        assert getattr(a32, net).params.dtype == np.float32
    # loss_q and Q(s, a) come before any step: float32 rounding of params and inputs only,
    # ~1e-7 relative per operation through 3 layers of <= 16-term sums: 1e-5 relative.
    for k in ("loss_q", "q_mean", "q_std"):
        assert i32[k] == pytest.approx(i64[k], rel=1e-5), k
    # After one Adam step every parameter moved by <= lr (first step) in both precisions.
    assert np.abs(a32.critic.params - a64.critic.params).max() < 2 * a64.q_lr + 1e-5
