"""numddpg.engine.agents.TD3Agent: the fused update against numddpg.kernels.reference.td3_update, the policy
delay, target policy smoothing, each critic's gradient against finite differences, the burst
kernel against single updates, validation, state round trip, and that numddpg.TD3 learns.

The kernel draws the smoothing noise eps[i, j] (B, act) row-major from the agent's own
``rng_state`` with numddpg.kernels.rng.normal (in a burst: after that update's B minibatch indices).
The tests reproduce those draws from a copy of the state and hand them to the reference.

Tolerances (float64):

PATHS 1e-12 relative to each array's scale (max |element| of the reference's array) on
      parameters and Adam moments, 1e-12 relative on losses.  Kernel and reference compute the
      same formulas in the same order except for BLAS's summation order in the matrix products
      (~1e-16 relative per product); over 6 updates of 300 cases drawn as in the hypothesis
      tests the largest difference was 7e-15 of the array's scale (measured).  Adam divides by
      sqrt(v_hat) + eps, which can magnify a rounding difference in a gradient element of size
      ~eps by up to lr / eps, still ~1e-14 absolute on O(0.1-1) parameters.  A wrong term
      changes a gradient, hence the Adam moments, by its own relative size (a missing action
      clip: 1e-2, measured); the parameters move less on Adam's first step (~lr sign(g)
      whatever |g|: 1e-8 there) and by 1e-5 after three.  All are far above the bound.
FD    1e-6 relative error (gradcheck.rel_error) against centred differences with h = 1e-6
      (truncation ~1e-12, rounding ~1e-10 relative), per weight/bias tensor; examples with a
      ReLU input within KINK_MARGIN = 1e-4 of its kink are rejected, as in tests/test_agents.py.
FD_ABS  1e-9 absolute: the rounding floor of a centred difference (~eps_mach |loss| / h ~ 2e-10
      for losses ~1); a tensor whose gradients are all tiny passes if its relative error is
      <= FD *or* its absolute error is <= FD_ABS (tests/test_agents.py's reasoning).
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numddpg
from numddpg.kernels import reference as ref
from numddpg.kernels import rng as nrng
from numddpg.engine.agents import TD3Agent
from numddpg.training.envs import random_policy_returns
from numddpg.kernels.gradcheck import (KINK_MARGIN, kink_margin, numeric_grad, rel_error,
                                       tensor_names)

PATHS = 1e-12
FD = 1e-6
FD_ABS = 1e-9
H = 1e-6

NETS = {"theta": "actor", "phi1": "critic1", "phi2": "critic2", "theta_targ": "actor_targ",
        "phi1_targ": "critic1_targ", "phi2_targ": "critic2_targ"}

from helpers import fake_buffer, random_batch, small_agent  # noqa: E402

# --- helpers -----------------------------------------------------------------------------------

def make_agent(*args, **kw):
    """A small float64 TD3Agent with asymmetric bounds (tests/helpers.py)."""
    return small_agent(TD3Agent, *args, **kw)


def draw_normals(state, B, act_dim):
    """eps (B, act) from numddpg.kernels.rng.normal on ``state`` (advanced in place), row-major: the
    order in which td3_update_kernel draws its smoothing noise."""
    eps = np.empty((B, act_dim))
    for i in range(B):
        for j in range(act_dim):
            eps[i, j] = nrng.normal(state)
    return eps


def next_eps(agent, B):
    """The smoothing draws the agent's next ``update`` on B rows will make (state not touched)."""
    return draw_normals(agent.rng_state.copy(), B, agent.act_dim)


def ref_state(agent):
    """The agent's state as numddpg.kernels.reference.td3_update's dict (copies)."""
    s = {k: getattr(agent, net).params.copy() for k, net in NETS.items()}
    s.update(m_pi=agent.pi_optim.m.copy(), v_pi=agent.pi_optim.v.copy(),
             m_q1=agent.q1_optim.m.copy(), v_q1=agent.q1_optim.v.copy(),
             m_q2=agent.q2_optim.m.copy(), v_q2=agent.q2_optim.v.copy(),
             t_pi=agent.pi_optim.t, t_q=agent.q_optim.t, n_updates=agent.n_updates)
    assert agent.q1_optim.t == agent.q2_optim.t == agent.q_optim.t   # one critic step count
    return s


def ref_update(agent, state, batch, eps):
    return ref.td3_update(state, batch, eps, agent.actor.sizes, agent.critic.sizes, agent.mid,
                          agent.half, agent.gamma, agent.polyak, agent.pi_lr, agent.q_lr,
                          agent.target_noise, agent.noise_clip, agent.policy_delay)


def assert_state_close(got, expected, rtol=PATHS):
    """Every array within rtol of the expected array's scale; counters exactly."""
    assert got.keys() == expected.keys()
    for k in expected:
        if k in ("t_pi", "t_q", "n_updates"):
            assert got[k] == expected[k], (k, got[k], expected[k])
        else:
            scale = np.abs(expected[k]).max()
            np.testing.assert_allclose(got[k], expected[k], rtol=0, atol=rtol * scale,
                                       err_msg=k)


def assert_info_close(info, expected, rtol=PATHS):
    for k in ("loss_q", "q_mean"):
        assert info[k] == pytest.approx(float(expected[k]), rel=rtol, abs=1e-15), k
    if np.isnan(expected["loss_pi"]):
        assert np.isnan(info["loss_pi"])           # no actor step on this call
    else:
        assert info["loss_pi"] == pytest.approx(float(expected["loss_pi"]), rel=rtol, abs=1e-15)
    # The kernel's std is sqrt(E[q^2] - mean^2) in one pass, good only to ~sqrt(4 eps) |mean|
    # = 3e-8 |mean| absolute (tests/test_agents.py, assert_info_close): bound 1e-9 relative or
    # 6e-8 |mean| absolute.
    assert info["q_std"] == pytest.approx(float(expected["q_std"]), rel=1e-9,
                                          abs=6e-8 * abs(float(expected["q_mean"])) + 1e-15)


def stats_row(info):
    return [info["loss_q"], info["loss_pi"], info["q_mean"], info["q_std"]]


# --- 1. the fused update is the reference's ------------------------------------------------------

def test_fused_update_equals_reference_over_consecutive_updates(rng):
    agent = make_agent(seed=3)
    state = ref_state(agent)
    assert (state["t_pi"], state["t_q"], state["n_updates"]) == (0, 0, 0)
    for n, B in enumerate((5, 5, 3, 8, 1, 8, 4), start=1):   # workspaces grow and shrink
        batch = random_batch(rng, agent, B)
        eps = next_eps(agent, B)
        info = agent.update(*batch)
        state, info_r = ref_update(agent, state, batch, eps)
        assert_state_close(ref_state(agent), state)           # PATHS, all six nets and moments
        assert_info_close(info, info_r)
        # policy_delay = 2: loss_pi is NaN on odd updates, a number on even ones
        assert np.isnan(info["loss_pi"]) == (n % 2 == 1)
        assert (agent.n_updates, agent.q_optim.t, agent.q2_optim.t, agent.pi_optim.t) == (
            n, n, n, n // 2)
    assert agent.n_updates == 7 and agent.pi_optim.t == 3


def test_update_draws_exactly_B_times_act_normals(rng):
    agent = make_agent(seed=1)
    for B in (1, 4, 7):
        expected = agent.rng_state.copy()
        draw_normals(expected, B, agent.act_dim)
        agent.update(*random_batch(rng, agent, B))
        np.testing.assert_array_equal(agent.rng_state, expected)


def test_update_stepwise_is_the_reference_on_the_agents_arrays(rng):
    """update_stepwise runs reference.td3_update with the draws update would make: it leaves
    the agent where update leaves its twin (PATHS), generator and counters included."""
    fused, stepwise = make_agent(seed=4), make_agent(seed=4)
    for n, B in enumerate((5, 3, 8, 1), start=1):
        batch = random_batch(rng, fused, B)
        info_f = fused.update(*batch)
        info_s = stepwise.update_stepwise(*batch)
        assert_state_close(ref_state(stepwise), ref_state(fused))
        assert_info_close(info_s, info_f)
        np.testing.assert_array_equal(stepwise.rng_state, fused.rng_state)
        assert stepwise.n_updates == n


# --- 2. hypothesis: drawn shapes, bounds and TD3 settings ----------------------------------------

@st.composite
def td3_cases(draw):
    """obs_dim 1-5, act_dim 1-3, 1-3 hidden layers of width 1-16, batch 1-12, asymmetric bounds
    low in [-3, 1], high = low + [0.1, 4], target_noise in [0, 2] (0 included), noise_clip in
    [0, 1], policy_delay 1-3, a seed for everything."""
    obs_dim = draw(st.integers(1, 5))
    act_dim = draw(st.integers(1, 3))
    hidden = draw(st.lists(st.integers(1, 16), min_size=1, max_size=3))
    batch = draw(st.integers(1, 12))
    low = np.array(draw(st.lists(st.floats(-3.0, 1.0), min_size=act_dim, max_size=act_dim)))
    width = np.array(draw(st.lists(st.floats(0.1, 4.0), min_size=act_dim, max_size=act_dim)))
    target_noise = draw(st.one_of(st.just(0.0), st.floats(0.0, 2.0)))
    noise_clip = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    policy_delay = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(obs_dim=obs_dim, act_dim=act_dim, hidden=hidden, B=batch, low=low,
                high=low + width, target_noise=target_noise, noise_clip=noise_clip,
                policy_delay=policy_delay, seed=seed)


def build(case):
    c = dict(case)
    B = c.pop("B")
    return make_agent(**c), np.random.default_rng(case["seed"]), B


@given(td3_cases())
def test_update_equals_reference_drawn_cases(case):
    agent, rng, B = build(case)
    state = ref_state(agent)
    for n in range(1, 5):      # 4 updates: with delay 2 or 3, calls with and without actor step
        batch = random_batch(rng, agent, B)
        eps = next_eps(agent, B)
        info = agent.update(*batch)
        state, info_r = ref_update(agent, state, batch, eps)
        assert_state_close(ref_state(agent), state)           # PATHS
        assert_info_close(info, info_r)
        assert np.isnan(info["loss_pi"]) == (n % case["policy_delay"] != 0)


# --- 3. policy delay -----------------------------------------------------------------------------

@pytest.mark.parametrize("policy_delay", [1, 2, 3])
def test_actor_and_targets_move_only_every_policy_delay_th_call(policy_delay, rng):
    agent = make_agent(seed=7, policy_delay=policy_delay)
    delayed = ("actor", "actor_targ", "critic1_targ", "critic2_targ")
    for n in range(1, 2 * policy_delay + 1):
        before = {name: getattr(agent, name).params.copy() for name in NETS.values()}
        pi_m, pi_v = agent.pi_optim.m.copy(), agent.pi_optim.v.copy()
        info = agent.update(*random_batch(rng, agent, 6))
        actor_step = n % policy_delay == 0
        for name in delayed:
            moved = not np.array_equal(getattr(agent, name).params, before[name])
            assert moved == actor_step, (n, name)             # bit-identical when not stepped
        assert np.array_equal(agent.pi_optim.m, pi_m) != actor_step
        assert np.array_equal(agent.pi_optim.v, pi_v) != actor_step
        for name in ("critic1", "critic2"):                   # both critics every call
            assert not np.array_equal(getattr(agent, name).params, before[name]), (n, name)
        assert np.isnan(info["loss_pi"]) != actor_step
        assert agent.pi_optim.t == n // policy_delay
        assert agent.q1_optim.t == agent.q2_optim.t == agent.n_updates == n
    # the critic targets did move away from the start, and stayed off the online critics
    assert not np.array_equal(agent.critic1_targ.params, agent.critic1.params)


# --- 4. target policy smoothing ------------------------------------------------------------------

def probe_critic(obs_dim, act_dim, j, width, low):
    """Flat params of a critic MLP [o + a, width, 1] with Q(s, a) = a_j exactly: the hidden unit
    0 computes a_j - low_j + 1 > 0 (ReLU is the identity there) and the output subtracts the
    offset again.  Fed to td3_target as both target critics, y = a2[:, j] with r = 0, d = 0,
    gamma = 1: the smoothed target action itself."""
    n_in = obs_dim + act_dim
    W0 = np.zeros((n_in, width))
    W0[obs_dim + j, 0] = 1.0
    b0 = np.zeros(width)
    b0[0] = 1.0 - low[j]
    W1 = np.zeros((width, 1))
    W1[0, 0] = 1.0
    b1 = np.array([low[j] - 1.0])
    return np.concatenate([W0.ravel(), b0, W1.ravel(), b1])


def smoothed_actions(agent, obs2, eps):
    """a2 (B, act) as reference.td3_target feeds it to the target critics (via probe critics)."""
    B = obs2.shape[0]
    cols = []
    for j in range(agent.act_dim):
        phi = probe_critic(agent.obs_dim, agent.act_dim, j, 4, agent.act_low)
        cols.append(ref.td3_target(agent.actor_targ.params, [phi, phi], agent.actor.sizes,
                                   (agent.obs_dim + agent.act_dim, 4, 1), agent.mid, agent.half,
                                   1.0, np.zeros(B), obs2, np.zeros(B), eps, agent.target_noise,
                                   agent.noise_clip))
    return np.stack(cols, axis=1)


def test_smoothed_target_actions_stay_in_bounds_and_within_the_clip(rng):
    agent = make_agent(obs_dim=3, act_dim=2, hidden=(8,), seed=4, target_noise=50.0,
                       noise_clip=0.1)
    B = 400
    obs2 = rng.standard_normal((B, 3)) * 3     # large inputs: some mu_targ near the bounds
    eps = next_eps(agent, B)
    a2 = smoothed_actions(agent, obs2, eps)
    mu, _, _ = ref.actor_action(agent.actor_targ.params, agent.actor.sizes, agent.mid,
                                agent.half, obs2)
    lo, hi = agent.mid - agent.half, agent.mid + agent.half
    # The probe critic reproduces a2 up to the roundings of (a2 - low + 1) + (low - 1): a few
    # eps_mach times |a2| + |low| + 1 <= 6 here (~4e-15), so 1e-14 absolute.
    tol = 1e-14
    assert np.all(a2 >= lo - tol) and np.all(a2 <= hi + tol)
    assert np.all(np.abs(a2 - mu) <= agent.noise_clip * agent.half + tol)
    # Noise std 50 half-ranges clipped at 0.1: a draw escapes the noise clip only if
    # |eps| < 0.002 (0.16% of draws); the bound clip acts where mu_targ lies within 0.1 half of
    # a bound.  Both clips are active in this sample.
    manual_noise = np.clip(agent.target_noise * agent.half * eps, -agent.noise_clip * agent.half,
                           agent.noise_clip * agent.half)
    manual = np.clip(mu + manual_noise, lo, hi)
    np.testing.assert_allclose(a2, manual, rtol=0, atol=tol)
    on_clip = np.abs(manual_noise) == agent.noise_clip * agent.half
    assert on_clip.mean() > 0.95
    assert np.any(manual == lo) or np.any(manual == hi)
    # and the critics see it: y from two ordinary target critics is r + gamma (1 - d) min(.)
    # of those actions
    rew, done = rng.standard_normal(B), (rng.uniform(size=B) < 0.3).astype(np.float64)
    y = ref.td3_target(agent.actor_targ.params,
                       [agent.critic1_targ.params, agent.critic2_targ.params],
                       agent.actor.sizes, agent.critic.sizes,
                       agent.mid, agent.half, agent.gamma, rew, obs2, done, eps,
                       agent.target_noise, agent.noise_clip)
    q1, _ = ref.critic_value(agent.critic1_targ.params, agent.critic.sizes, obs2, manual)
    q2, _ = ref.critic_value(agent.critic2_targ.params, agent.critic.sizes, obs2, manual)
    # Same operations on actions equal to 1e-14: 1e-12 relative covers the propagation.
    np.testing.assert_allclose(y, rew + agent.gamma * (1 - done) * np.minimum(q1, q2),
                               rtol=PATHS, atol=PATHS)


def test_kernel_equals_reference_with_heavy_smoothing(rng):
    """The kernel clips the noise and the action as the reference does (noise 10 half-ranges,
    clip 0.1, s' large enough that mu_targ(s') nears the bounds): PATHS over a few updates, on
    batches where both clips are active."""
    agent = make_agent(seed=6, target_noise=10.0, noise_clip=0.1, policy_delay=1)
    state = ref_state(agent)
    lo, hi = agent.mid - agent.half, agent.mid + agent.half
    for B in (16, 16, 16):
        obs, act, rew, obs2, done = random_batch(rng, agent, B)
        batch = (obs, act, rew, obs2 * 10, done)
        eps = next_eps(agent, B)
        mu, _, _ = ref.actor_action(state["theta_targ"], agent.actor.sizes, agent.mid,
                                    agent.half, batch[3])
        raw = agent.target_noise * agent.half * eps
        noise = np.clip(raw, -agent.noise_clip * agent.half, agent.noise_clip * agent.half)
        assert np.mean(noise != raw) > 0.9                      # the noise clip acts ...
        assert np.any((mu + noise < lo) | (mu + noise > hi))    # ... and so does the bound
        info = agent.update(*batch)
        state, info_r = ref_update(agent, state, batch, eps)
        assert_state_close(ref_state(agent), state)
        assert_info_close(info, info_r)


def test_without_noise_the_target_is_the_clipped_double_q(rng):
    agent = make_agent(seed=8, target_noise=0.0)
    for _ in range(3):                      # targets and the two critics drift apart
        agent.update(*random_batch(rng, agent, 6))
    B = 9
    _, _, rew, obs2, done = random_batch(rng, agent, B)
    mu, _, _ = ref.actor_action(agent.actor_targ.params, agent.actor.sizes, agent.mid,
                                agent.half, obs2)
    q1, _ = ref.critic_value(agent.critic1_targ.params, agent.critic.sizes, obs2, mu)
    q2, _ = ref.critic_value(agent.critic2_targ.params, agent.critic.sizes, obs2, mu)
    # shift target critic 2's output bias (the last parameter) so that the two cross on this
    # batch and the minimum picks from both
    shift = np.median(q1 - q2)
    agent.critic2_targ.params[-1] += shift
    q2, _ = ref.critic_value(agent.critic2_targ.params, agent.critic.sizes, obs2, mu)
    assert np.any(q1 < q2) and np.any(q2 < q1)
    expected = rew + agent.gamma * (1 - done) * np.minimum(q1, q2)
    eps = rng.standard_normal((B, agent.act_dim)) * 5         # any draws: 0 x eps = 0
    y = ref.td3_target(agent.actor_targ.params,
                       [agent.critic1_targ.params, agent.critic2_targ.params],
                       agent.actor.sizes, agent.critic.sizes,
                       agent.mid, agent.half, agent.gamma, rew, obs2, done, eps, 0.0,
                       agent.noise_clip)
    # zero noise leaves mu_targ in bounds untouched: the same operations, bit for bit
    np.testing.assert_array_equal(y, expected)
    # with both target critics equal, it is DDPG's target
    y_same = ref.td3_target(agent.actor_targ.params,
                            [agent.critic1_targ.params, agent.critic1_targ.params],
                            agent.actor.sizes, agent.critic.sizes,
                            agent.mid, agent.half, agent.gamma, rew, obs2, done, eps, 0.0, 0.5)
    np.testing.assert_array_equal(
        y_same, ref.td_target(agent.actor_targ.params, agent.critic1_targ.params,
                              agent.actor.sizes, agent.critic.sizes, agent.mid, agent.half,
                              agent.gamma, rew, obs2, done))


# --- 5. each critic's gradient is its own MSE's --------------------------------------------------

def fd_failures(f, analytic, x, sizes):
    """{tensor: (rel, abs)} of the tensors failing both FD and FD_ABS (module docstring)."""
    numeric = numeric_grad(f, x.copy(), H)
    errs = {name: (rel_error(analytic[sl], numeric[sl]), np.abs(analytic[sl] - numeric[sl]).max())
            for name, sl, _ in tensor_names(sizes)}
    return {k: e for k, e in errs.items() if e[0] > FD and e[1] > FD_ABS}


@given(td3_cases())
def test_each_critic_gradient_is_its_own_mse_gradient(case):
    """After an update, the gradients it applied (agent.gradients(): critic 1, critic 2)
    hold d/dphi_c mean (Q_phi_c(s, a) - y)^2 at the pre-update phi_c, y = td3_target from the
    pre-update targets and the kernel's own smoothing draws."""
    agent, rng, B = build(case)
    agent.update(*random_batch(rng, agent, B))     # targets and critics differ, Adam has moved
    batch = random_batch(rng, agent, B)
    obs, act, rew, obs2, done = batch
    pre = ref_state(agent)
    eps = next_eps(agent, B)
    y = ref.td3_target(pre["theta_targ"], [pre["phi1_targ"], pre["phi2_targ"]], agent.actor.sizes,
                       agent.critic.sizes, agent.mid, agent.half, agent.gamma, rew, obs2, done,
                       eps, agent.target_noise, agent.noise_clip)
    xq = np.concatenate([obs, act], axis=1)
    sizes_q = agent.critic.sizes
    assume(min(kink_margin(pre[k], sizes_q, "identity", xq) for k in ("phi1", "phi2"))
           > KINK_MARGIN)
    agent.update(*batch)
    grads = agent.gradients()
    for key, g in (("phi1", grads["critic"]), ("phi2", grads["critic2"])):
        def f(phi):
            q, _ = ref.critic_value(phi, sizes_q, obs, act)
            return float(np.mean((q - y) ** 2))
        assert fd_failures(f, g, pre[key], sizes_q) == {}, key
        # and the reference's analytic gradient of that MSE (PATHS: same formula)
        _, dphi, _ = ref.critic_loss_and_grad(pre[key], sizes_q, obs, act, y)
        assert rel_error(g, dphi) < PATHS, key


# --- 6. the burst kernel -------------------------------------------------------------------------

@pytest.mark.parametrize("policy_delay", [2, 3])
def test_update_burst_equals_sequential_updates(policy_delay, rng):
    K, B = 5, 6
    burst = make_agent(seed=9, policy_delay=policy_delay)
    single = make_agent(seed=9, policy_delay=policy_delay)
    buf = fake_buffer(rng, burst, capacity=50, size=37)
    # Per update, from one generator state: B indices, then B * act smoothing normals.
    state = burst.rng_state.copy()
    infos = []
    for _ in range(K):
        idx = np.array([nrng.randint(state, buf.size) for _ in range(B)])
        assert idx.max() < buf.size
        batch = tuple(np.asarray(arr[idx], np.float64)
                      for arr in (buf.obs, buf.act, buf.rew, buf.obs2, buf.done))
        single.rng_state[:] = state          # the single update draws its noise from here
        infos.append(single.update(*batch))
        draw_normals(state, B, burst.act_dim)
        np.testing.assert_array_equal(single.rng_state, state)
    stats = burst.update_burst(buf, B, K)
    assert stats.shape == (K, 4)
    np.testing.assert_array_equal(burst.rng_state, state)      # K (B + B act) draws, no more
    # Same fused kernel on the same rows and draws: equal up to BLAS rounding (PATHS).
    assert_state_close(ref_state(burst), ref_state(single))
    assert burst.n_updates == K and burst.pi_optim.t == K // policy_delay
    for k, info in enumerate(infos):
        assert np.isnan(stats[k, 1]) == ((k + 1) % policy_delay != 0)
        np.testing.assert_allclose(stats[k], stats_row(info), rtol=PATHS, atol=1e-15)
    # a second burst continues the delay phase (counters carried between calls)
    stats2 = burst.update_burst(buf, B, policy_delay)
    assert np.isnan(stats2[:, 1]).tolist() == [(K + k + 1) % policy_delay != 0
                                              for k in range(policy_delay)]


# --- 7. bad input, state round trip --------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"target_noise": -0.1}, r"target_noise must be >= 0 .*got -0\.1"),
    ({"target_noise": np.nan}, r"target_noise must be >= 0 .*got nan"),
    ({"target_noise": np.inf}, r"target_noise must be >= 0 .*got inf"),
    ({"noise_clip": -0.5}, r"noise_clip must be >= 0 .*got -0\.5"),
    ({"noise_clip": np.nan}, r"noise_clip must be >= 0 .*got nan"),
    ({"policy_delay": 0}, r"policy_delay must be a positive integer, got 0"),
    ({"policy_delay": -2}, r"policy_delay must be a positive integer, got -2"),
    ({"policy_delay": 1.5}, r"policy_delay must be a positive integer, got 1\.5"),
    ({"policy_delay": True}, r"policy_delay must be a positive integer, got True"),
])
def test_constructor_rejects_bad_td3_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TD3Agent(3, 2, -1.0, 1.0, hidden_sizes=(4,), **kwargs)


def test_zero_noise_and_clip_are_allowed():
    agent = TD3Agent(3, 2, -1.0, 1.0, hidden_sizes=(4,), target_noise=0.0, noise_clip=0.0,
                     policy_delay=1)
    assert agent.config()["target_noise"] == 0.0 and agent.config()["policy_delay"] == 1


def test_state_dict_round_trip_keeps_counters_and_the_delay_phase(rng):
    a = make_agent(seed=10, policy_delay=3)
    for _ in range(4):                           # n_updates 4: the next actor step is call 6
        a.update(*random_batch(rng, a, 5))
    sd = a.state_dict()
    for k in ("actor", "critic", "critic2", "actor_targ", "critic_targ", "critic2_targ",
              "pi_m", "pi_v", "q_m", "q_v", "q2_m", "q2_v", "rng_state"):
        assert k in sd, k
    np.testing.assert_array_equal(sd["counters"], [1, 4, 4])  # [t_pi, t_q, n_updates]
    b = make_agent(seed=99, policy_delay=3)                   # different weights and generator
    b.load_state_dict(sd)
    assert (b.pi_optim.t, b.q1_optim.t, b.q2_optim.t, b.n_updates) == (1, 4, 4, 4)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k], err_msg=k)
    sd_before = {k: v.copy() for k, v in sd.items()}   # state_dict copies: updates leave sd
    # both continue identically (same kernel on the same state: bit for bit), including the
    # phase of the delay (an actor step on call 6 only) and the smoothing draws
    for n in (5, 6, 7):
        batch = random_batch(rng, a, 5)
        ia, ib = a.update(*batch), b.update(*batch)
        assert np.isnan(ia["loss_pi"]) == np.isnan(ib["loss_pi"]) == (n != 6)
        np.testing.assert_array_equal(stats_row(ia), stats_row(ib))
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v, err_msg=k)
    for k, v in sd.items():
        np.testing.assert_array_equal(v, sd_before[k], err_msg=k)
    missing = {k: v for k, v in sd.items() if k != "critic2"}
    with pytest.raises(ValueError, match="state is missing 'critic2'"):
        b.load_state_dict(missing)


# --- 8. it learns -------------------------------------------------------------------------------

def test_td3_pendulum_learns_in_ten_thousand_steps():
    """A broken update cannot pass: 10,000 steps (about 2-3 s on 2 busy cores) with the
    Pendulum preset and seed 0 must beat the random policy by a wide margin on 5 deterministic
    test episodes.

    Measured on the 2-core dev machine (5 episodes each): random policy -1350 +- 340 (these
    resets); trained seed 0: -120, seeds 0-11: -103 to -462, so -700 leaves a margin of 240
    over the worst seed and 650 under random.  Runs with a frozen actor (pi_lr 1e-9), a frozen
    critic (q_lr 1e-9) or no bootstrapping (gamma 0) give -1225, -1614 and -1438: all fail.
    5,000 steps (the DDPG test's budget) is too short for TD3: with policy_delay 2 the actor
    and the targets take half as many steps, and seeds 0-9 reach only -500 to -1220 there
    (seed 0: -755 +- 375), too close to random for a robust bound.
    """
    m = numddpg.TD3("Pendulum-v1", seed=0, log=False, num_test_episodes=0)
    m.learn(10_000, progress_bar=False)
    trained, _ = m.evaluate(5)
    rand = random_policy_returns(m.test_env, 5, np.random.default_rng(0)).mean()
    assert rand < -900
    assert trained > -700, (trained, rand)
