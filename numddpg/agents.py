"""DDPG's update from the kernels of nn.py and optim.py (docs/math.md, "The DDPG update").

One update on a minibatch (s, a, r, s', d) of B rows, networks on flat parameter vectors:

    1. target      y = r + gamma (1 - d) Q_targ(s', mu_targ(s'))                (a constant)
    2. critic      L_Q = mean (Q(s, a) - y)^2 ; dL_Q/dQ_i = 2 (Q_i - y_i) / B ; Adam on phi
    3. actor       J = -mean Q(s, mu(s)) with the *updated* critic held constant ;
                   dJ/dQ_i = -1/B -> dJ/da (critic input's action columns) -> dJ/du = half * dJ/da
                   -> through tanh into theta ; Adam on theta
    4. polyak      phi_targ <- rho phi_targ + (1 - rho) phi ; theta_targ likewise

with mu(s) = mid + half * u(s), u = tanh(MLP_theta(s)), mid = (high + low) / 2,
half = (high - low) / 2, and Q(s, a) = MLP_phi(concat(s, a)).

``ddpg_update_kernel`` does all four steps in one jitted call on preallocated workspaces;
``ddpg_burst_kernel`` samples K minibatches from replay arrays and runs K updates in one call.
``DDPGAgent.update_stepwise`` runs the same math one public kernel at a time from Python, and
numddpg.reference has the plain-NumPy twin; the tests hold all three equal.
"""
import numpy as np
from numba import njit

from . import rng as _rng
from .nn import MLP, check_dtype, check_sizes, mlp_backward, mlp_forward
from .optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, Adam, adam_polyak_step, adam_step, polyak_update

# Indices into the float64 hyperparameter vector the kernels read.
HP_GAMMA, HP_POLYAK, HP_PI_LR, HP_Q_LR, HP_BETA1, HP_BETA2, HP_EPS = range(7)
# Columns of the per-update statistics the kernels write.
ST_LOSS_Q, ST_LOSS_PI, ST_Q_MEAN, ST_Q_STD = range(4)
N_STATS = 4


# ---------------------------------------------------------------------------------------------
# Validation shared by the agents
# ---------------------------------------------------------------------------------------------

def check_bounds(act_low, act_high, act_dim):
    """Return (low, high) as float64 (act_dim,) arrays after checking they are finite and ordered."""
    low = np.broadcast_to(np.asarray(act_low, dtype=np.float64), (act_dim,)).copy()
    high = np.broadcast_to(np.asarray(act_high, dtype=np.float64), (act_dim,)).copy()
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"action bounds must be finite, got act_low={low}, act_high={high}; "
                         "DDPG squashes actions with tanh into [low, high], so give finite bounds "
                         "(e.g. wrap the env with gymnasium.wrappers.RescaleAction)")
    if np.any(low >= high):
        raise ValueError(f"act_low must be < act_high in every dimension, got act_low={low}, "
                         f"act_high={high}")
    return low, high


def check_unit_interval(name, value):
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def check_positive(name, value):
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_dim(name, value):
    if isinstance(value, (bool, np.bool_)) or int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def workspace_size(B, obs_dim, act_dim, sizes_pi, sizes_q):
    """Elements of the flat workspace ``ddpg_update_kernel`` carves for B rows."""
    n_pi = B * sum(sizes_pi[1:])
    n_q = B * sum(sizes_q[1:])
    width = max(max(sizes_pi), max(sizes_q))
    # acts for pi, pi_targ, q, q_targ; critic input xq; y; two deltas; dq; dmu
    return (2 * n_pi + 2 * n_q + B * (obs_dim + act_dim) + B + 2 * B * width + B + B * act_dim)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _carve(work, off, n):
    """The next n elements of the flat workspace, and the offset after them."""
    return work[off:off + n], off + n


@njit(cache=True)
def _carve_batch_buffers(work, off, B, o, a, width):
    """The per-update buffers both kernels use, carved from work[off:]: the critic input
    xq = concat(s, a) (B, o + a); the targets y (B,); two backprop scratch vectors delta_a,
    delta_b (B * width,); dq = dLoss/dQ (B, 1); dmu = dJ/da, then dJ/du (B, a).  Returns them
    and the offset after them."""
    xq_flat, off = _carve(work, off, B * (o + a))
    y, off = _carve(work, off, B)
    delta_a, off = _carve(work, off, B * width)
    delta_b, off = _carve(work, off, B * width)
    dq_flat, off = _carve(work, off, B)
    dmu_flat, off = _carve(work, off, B * a)
    return (xq_flat.reshape((B, o + a)), y, delta_a, delta_b, dq_flat.reshape((B, 1)),
            dmu_flat.reshape((B, a)), off)


@njit(cache=True)
def _runtime_flags(sizes):
    """(True, False, 0) as run-time values rather than literals.  Numba compiles a separate
    specialisation of a callee for every literal argument (tanh_out=True, tanh_out=False,
    dx_col0=0, ...); passing these instead makes one compiled mlp_forward and one mlp_backward
    serve every call of an update, which cuts the first run's compile time by about a third."""
    yes = sizes.shape[0] > 0
    return yes, not yes, sizes.shape[0] - sizes.shape[0]


@njit(cache=True)
def scale_action(u, mid, half, out):
    """out = mid + half * u, row by row: the action from the actor's tanh output u (B, act)."""
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            out[i, j] = mid[j] + half[j] * u[i, j]


@njit(cache=True)
def ddpg_update_kernel(pi, q, pi_targ, q_targ, sizes_pi, sizes_q, mid, half,
                       g_pi, g_q, m_pi, v_pi, m_q, v_q, t, hp,
                       obs, act, rew, obs2, done, work, stats):
    """One DDPG update, steps 1-4 of the module docstring, in place.

    pi, q, pi_targ, q_targ (P_pi,), (P_q,)   flat params of actor, critic and their targets
    g_*, m_*, v_* (same shapes)              gradient and Adam moment workspaces
    t (2,) int64                             Adam step counts [t_pi, t_q], incremented here
    hp (7,) float64                          gamma, polyak, pi_lr, q_lr, beta1, beta2, eps
    obs, obs2 (B, o); act (B, a); rew, done (B,)   the minibatch, read only
    work (>= workspace_size(B, ...))         scratch
    stats (4,)                               written: loss_q, loss_pi, mean Q(s,a), std Q(s,a)
    """
    B = obs.shape[0]
    o = obs.shape[1]
    a = act.shape[1]
    width = max(sizes_pi.max(), sizes_q.max())
    tanh_out, identity_out, zero = _runtime_flags(sizes_pi)
    off = zero
    acts_pi, off = _carve(work, off, B * sizes_pi[1:].sum())
    acts_pit, off = _carve(work, off, B * sizes_pi[1:].sum())
    acts_q, off = _carve(work, off, B * sizes_q[1:].sum())
    acts_qt, off = _carve(work, off, B * sizes_q[1:].sum())
    xq, y, delta_a, delta_b, dq, dmu, off = _carve_batch_buffers(work, off, B, o, a, width)
    no_grad = work[:0]
    no_dx = work[:0].reshape((0, 0))
    gamma = hp[HP_GAMMA]

    # 1. target y = r + gamma (1 - d) Q_targ(s', mu_targ(s'))
    u2 = mlp_forward(pi_targ, sizes_pi, tanh_out, obs2, acts_pit)
    xq[:, :o] = obs2
    scale_action(u2, mid, half, xq[:, o:])
    q2 = mlp_forward(q_targ, sizes_q, identity_out, xq, acts_qt)
    for i in range(B):
        y[i] = rew[i] + gamma * (1.0 - done[i]) * q2[i, 0]

    # 2. critic: L_Q = mean (Q - y)^2, dL_Q/dQ_i = 2 (Q_i - y_i) / B, Adam on phi
    xq[:, :o] = obs
    xq[:, o:] = act
    qv = mlp_forward(q, sizes_q, identity_out, xq, acts_q)
    loss_q = 0.0
    q_sum = 0.0
    q_sq = 0.0
    for i in range(B):
        err = qv[i, 0] - y[i]
        loss_q += err * err
        dq[i, 0] = 2.0 * err / B
        q_sum += qv[i, 0]
        q_sq += qv[i, 0] * qv[i, 0]
    mlp_backward(q, sizes_q, identity_out, xq, acts_q, dq, g_q, no_dx, zero, delta_a, delta_b)
    t[1] += 1                                 # Adam on phi, and step 4's polyak on phi_targ
    adam_polyak_step(q, g_q, m_q, v_q, t[1], hp[HP_Q_LR], hp[HP_BETA1], hp[HP_BETA2], hp[HP_EPS],
                     q_targ, hp[HP_POLYAK])   # (fused: phi_targ is not read again this update)

    # 3. actor: J = -mean Q(s, mu(s)) through the updated critic (phi held constant)
    u = mlp_forward(pi, sizes_pi, tanh_out, obs, acts_pi)
    scale_action(u, mid, half, xq[:, o:])     # xq[:, :o] still holds obs
    qpi = mlp_forward(q, sizes_q, identity_out, xq, acts_q)
    loss_pi = 0.0
    for i in range(B):
        loss_pi -= qpi[i, 0]
        dq[i, 0] = -1.0 / B
    mlp_backward(q, sizes_q, identity_out, xq, acts_q, dq, no_grad, dmu, o, delta_a, delta_b)
    for i in range(B):                        # a = mid + half * u  =>  dJ/du = half * dJ/da
        for j in range(a):
            dmu[i, j] *= half[j]
    mlp_backward(pi, sizes_pi, tanh_out, obs, acts_pi, dmu, g_pi, no_dx, zero, delta_a, delta_b)
    t[0] += 1                                 # Adam on theta, and step 4's polyak on theta_targ
    adam_polyak_step(pi, g_pi, m_pi, v_pi, t[0], hp[HP_PI_LR], hp[HP_BETA1], hp[HP_BETA2],
                     hp[HP_EPS], pi_targ, hp[HP_POLYAK])
    # 4. polyak: done inside the two fused steps above

    q_mean = q_sum / B
    stats[ST_LOSS_Q] = loss_q / B
    stats[ST_LOSS_PI] = loss_pi / B
    stats[ST_Q_MEAN] = q_mean
    stats[ST_Q_STD] = np.sqrt(max(q_sq / B - q_mean * q_mean, 0.0))


@njit(cache=True)
def gather_batch(idx, buf_obs, buf_act, buf_rew, buf_obs2, buf_done, obs, act, rew, obs2, done):
    """Copy replay rows idx (B,) into the preallocated minibatch arrays (casting to their dtype)."""
    for i in range(idx.shape[0]):
        j = idx[i]
        for c in range(obs.shape[1]):
            obs[i, c] = buf_obs[j, c]
            obs2[i, c] = buf_obs2[j, c]
        for c in range(act.shape[1]):
            act[i, c] = buf_act[j, c]
        rew[i] = buf_rew[j]
        done[i] = buf_done[j]


@njit(cache=True)
def sample_indices(rng_state, size, idx):
    """idx[i] ~ uniform{0, ..., size-1}, with replacement, from the caller's generator state."""
    for i in range(idx.shape[0]):
        idx[i] = _rng.randint(rng_state, size)


@njit(cache=True)
def ddpg_burst_kernel(K, buf_obs, buf_act, buf_rew, buf_obs2, buf_done, size, rng_state, idx,
                      pi, q, pi_targ, q_targ, sizes_pi, sizes_q, mid, half,
                      g_pi, g_q, m_pi, v_pi, m_q, v_q, t, hp,
                      obs, act, rew, obs2, done, work, stats):
    """K updates, each on a minibatch of B = idx.shape[0] rows sampled uniformly with replacement
    from the first ``size`` replay rows; stats (K, 4) receives each update's statistics."""
    for k in range(K):
        sample_indices(rng_state, size, idx)
        gather_batch(idx, buf_obs, buf_act, buf_rew, buf_obs2, buf_done, obs, act, rew, obs2, done)
        ddpg_update_kernel(pi, q, pi_targ, q_targ, sizes_pi, sizes_q, mid, half,
                           g_pi, g_q, m_pi, v_pi, m_q, v_q, t, hp,
                           obs, act, rew, obs2, done, work, stats[k])


@njit(cache=True)
def td3_update_kernel(pi, q1, q2, pi_targ, q1_targ, q2_targ, sizes_pi, sizes_q, mid, half,
                      g_pi, g_q1, g_q2, m_pi, v_pi, m_q1, v_q1, m_q2, v_q2, t, hp, td3,
                      rng_state, obs, act, rew, obs2, done, work, stats):
    """One TD3 update (docs/math.md, "TD3") in place: always a critic step on both critics; the
    actor step (on Q1) and polyak on all three targets on every policy_delay-th call.

    As ddpg_update_kernel, plus: q1/q2 and their targets, gradients and moments (P_q,);
    t (3,) int64 = [t_pi, t_q, n_updates]; td3 (3,) float64 = [target_noise, noise_clip,
    policy_delay] (noise and clip in units of the action half-range); rng_state (1,) uint64
    draws the smoothing noise eps[i, j] in row-major order.
        a2 = clip(mu_targ(s') + clip(target_noise * half * eps, -noise_clip * half,
                                     +noise_clip * half), low, high)
        y  = r + gamma (1 - d) min(Q1_targ(s', a2), Q2_targ(s', a2))
        L_Q = mean (Q1(s, a) - y)^2 + mean (Q2(s, a) - y)^2
    stats (4,): loss_q (the sum), loss_pi (NaN on calls without an actor step), mean and std of
    Q1(s, a).
    """
    B = obs.shape[0]
    o = obs.shape[1]
    a = act.shape[1]
    width = max(sizes_pi.max(), sizes_q.max())
    n_pi = B * sizes_pi[1:].sum()
    n_q = B * sizes_q[1:].sum()
    tanh_out, identity_out, zero = _runtime_flags(sizes_pi)
    off = zero
    acts_pi, off = _carve(work, off, n_pi)
    acts_pit, off = _carve(work, off, n_pi)
    acts_q1, off = _carve(work, off, n_q)
    acts_q1t, off = _carve(work, off, n_q)
    acts_q2, off = _carve(work, off, n_q)
    acts_q2t, off = _carve(work, off, n_q)
    xq, y, delta_a, delta_b, dq, dmu, off = _carve_batch_buffers(work, off, B, o, a, width)
    no_grad = work[:0]
    no_dx = work[:0].reshape((0, 0))
    gamma = hp[HP_GAMMA]
    target_noise = td3[0]
    noise_clip = td3[1]
    policy_delay = int(td3[2])

    # 1. target with policy smoothing and the clipped double-Q minimum
    u2 = mlp_forward(pi_targ, sizes_pi, tanh_out, obs2, acts_pit)
    xq[:, :o] = obs2
    for i in range(B):
        for j in range(a):
            c = noise_clip * half[j]
            eps = target_noise * half[j] * _rng.normal(rng_state)
            eps = min(max(eps, -c), c)
            act2 = mid[j] + half[j] * u2[i, j] + eps
            xq[i, o + j] = min(max(act2, mid[j] - half[j]), mid[j] + half[j])
    q1n = mlp_forward(q1_targ, sizes_q, identity_out, xq, acts_q1t)
    q2n = mlp_forward(q2_targ, sizes_q, identity_out, xq, acts_q2t)
    for i in range(B):
        y[i] = rew[i] + gamma * (1.0 - done[i]) * min(q1n[i, 0], q2n[i, 0])

    # 2. critic step: each critic's gradient is that of its own MSE; one Adam step count
    xq[:, :o] = obs
    xq[:, o:] = act
    t[1] += 1
    # On a policy_delay-th call the targets are averaged after this call's steps; nothing reads
    # Q1, Q2 targets in between, so each critic's polyak rides in its Adam pass (one sweep).
    delayed = (t[2] + 1) % policy_delay == 0
    loss_q = 0.0
    q_sum = 0.0
    q_sq = 0.0
    for c in range(2):
        qn = q1 if c == 0 else q2
        qt = q1_targ if c == 0 else q2_targ
        gq = g_q1 if c == 0 else g_q2
        mq = m_q1 if c == 0 else m_q2
        vq = v_q1 if c == 0 else v_q2
        acts_q = acts_q1 if c == 0 else acts_q2
        qv = mlp_forward(qn, sizes_q, identity_out, xq, acts_q)
        for i in range(B):
            err = qv[i, 0] - y[i]
            loss_q += err * err / B
            dq[i, 0] = 2.0 * err / B
            if c == 0:
                q_sum += qv[i, 0]
                q_sq += qv[i, 0] * qv[i, 0]
        mlp_backward(qn, sizes_q, identity_out, xq, acts_q, dq, gq, no_dx, zero, delta_a, delta_b)
        if delayed:    # Adam on phi_c, then step 4's polyak on phi_targ_c, in one pass
            adam_polyak_step(qn, gq, mq, vq, t[1], hp[HP_Q_LR], hp[HP_BETA1], hp[HP_BETA2],
                             hp[HP_EPS], qt, hp[HP_POLYAK])
        else:
            adam_step(qn, gq, mq, vq, t[1], hp[HP_Q_LR], hp[HP_BETA1], hp[HP_BETA2], hp[HP_EPS])

    # 3. every policy_delay-th call: actor step on Q1 (critics constant), then polyak
    t[2] += 1
    loss_pi = np.nan
    if delayed:
        u = mlp_forward(pi, sizes_pi, tanh_out, obs, acts_pi)
        scale_action(u, mid, half, xq[:, o:])
        qpi = mlp_forward(q1, sizes_q, identity_out, xq, acts_q1)
        loss_pi = 0.0
        for i in range(B):
            loss_pi -= qpi[i, 0] / B
            dq[i, 0] = -1.0 / B
        mlp_backward(q1, sizes_q, identity_out, xq, acts_q1, dq, no_grad, dmu, o, delta_a, delta_b)
        for i in range(B):
            for j in range(a):
                dmu[i, j] *= half[j]
        mlp_backward(pi, sizes_pi, tanh_out, obs, acts_pi, dmu, g_pi, no_dx, zero, delta_a, delta_b)
        t[0] += 1
        # Adam on theta and polyak on theta_targ in one pass (the critics' were fused above)
        adam_polyak_step(pi, g_pi, m_pi, v_pi, t[0], hp[HP_PI_LR], hp[HP_BETA1], hp[HP_BETA2],
                         hp[HP_EPS], pi_targ, hp[HP_POLYAK])

    q_mean = q_sum / B
    stats[ST_LOSS_Q] = loss_q
    stats[ST_LOSS_PI] = loss_pi
    stats[ST_Q_MEAN] = q_mean
    stats[ST_Q_STD] = np.sqrt(max(q_sq / B - q_mean * q_mean, 0.0))


@njit(cache=True)
def td3_burst_kernel(K, buf_obs, buf_act, buf_rew, buf_obs2, buf_done, size, rng_state, idx,
                     pi, q1, q2, pi_targ, q1_targ, q2_targ, sizes_pi, sizes_q, mid, half,
                     g_pi, g_q1, g_q2, m_pi, v_pi, m_q1, v_q1, m_q2, v_q2, t, hp, td3,
                     obs, act, rew, obs2, done, work, stats):
    """K TD3 updates on minibatches sampled as in ddpg_burst_kernel (indices, then noise, per
    update, from the same generator state)."""
    for k in range(K):
        sample_indices(rng_state, size, idx)
        gather_batch(idx, buf_obs, buf_act, buf_rew, buf_obs2, buf_done, obs, act, rew, obs2, done)
        td3_update_kernel(pi, q1, q2, pi_targ, q1_targ, q2_targ, sizes_pi, sizes_q, mid, half,
                          g_pi, g_q1, g_q2, m_pi, v_pi, m_q1, v_q1, m_q2, v_q2, t, hp, td3,
                          rng_state, obs, act, rew, obs2, done, work, stats[k])


# ---------------------------------------------------------------------------------------------
# The agents
# ---------------------------------------------------------------------------------------------

class DDPGAgent:
    """Actor, critic, their targets, two Adam states and the workspaces of the fused update.

    Parameters
    ----------
    obs_dim, act_dim : int
    act_low, act_high : float or (act_dim,) array — finite, low < high (may be asymmetric).
    hidden_sizes : sequence of int — hidden widths of both networks.
    gamma : discount in [0, 1].       polyak : target averaging weight rho in [0, 1].
    pi_lr, q_lr : Adam learning rates of actor and critic (> 0).
    dtype : np.float32 (training) or np.float64 (gradient checks).
    seed : int or None — initialises the networks and the minibatch sampler.

    Attributes: ``actor``, ``critic``, ``actor_targ``, ``critic_targ`` (numddpg.MLP),
    ``pi_optim``, ``q_optim`` (numddpg.optim.Adam), ``mid``, ``half`` (act_dim,).
    """

    algo = "ddpg"

    def __init__(self, obs_dim, act_dim, act_low, act_high, hidden_sizes=(256, 256), gamma=0.99,
                 polyak=0.995, pi_lr=1e-3, q_lr=1e-3, dtype=np.float32, seed=None):
        self.obs_dim = check_dim("obs_dim", obs_dim)
        self.act_dim = check_dim("act_dim", act_dim)
        hidden = check_sizes([1, *hidden_sizes, 1], "hidden_sizes")[1:-1]
        if len(hidden) == 0:
            raise ValueError(f"hidden_sizes must name at least one hidden layer, got {hidden_sizes!r}")
        self.hidden_sizes = hidden
        self.gamma = check_unit_interval("gamma", gamma)
        self.polyak = check_unit_interval("polyak", polyak)
        self.pi_lr = check_positive("pi_lr", pi_lr)
        self.q_lr = check_positive("q_lr", q_lr)
        self.dtype = check_dtype(dtype)
        self.act_low, self.act_high = check_bounds(act_low, act_high, self.act_dim)
        self.mid = ((self.act_high + self.act_low) / 2).astype(self.dtype)
        self.half = ((self.act_high - self.act_low) / 2).astype(self.dtype)

        seq = np.random.SeedSequence(seed)
        init_seed, sampler_seed = seq.spawn(2)
        rng = np.random.default_rng(init_seed)
        self._build_networks(rng)
        self.rng_state = _rng.new_state(sampler_seed.generate_state(1, np.uint64)[0])
        self._hp = np.array([self.gamma, self.polyak, self.pi_lr, self.q_lr,
                             ADAM_BETA1, ADAM_BETA2, ADAM_EPS], dtype=np.float64)
        self._batch = 0
        self._stats = np.zeros(N_STATS, np.float64)

    # -- construction -------------------------------------------------------------------------
    def _build_networks(self, rng):
        o, a, h = self.obs_dim, self.act_dim, self.hidden_sizes
        self.actor = MLP([o, *h, a], output="tanh", dtype=self.dtype, rng=rng)
        self.critic = MLP([o + a, *h, 1], output="identity", dtype=self.dtype, rng=rng)
        self.actor_targ = self.actor.copy()
        self.critic_targ = self.critic.copy()
        self.pi_optim = Adam(self.actor.n_params, self.pi_lr, self.dtype)
        self.q_optim = Adam(self.critic.n_params, self.q_lr, self.dtype)
        self._g_pi = np.zeros(self.actor.n_params, self.dtype)
        self._g_q = np.zeros(self.critic.n_params, self.dtype)
        self._t = np.zeros(2, np.int64)       # [t_pi, t_q], mirrored into the Adam objects

    def _workspace(self, B):
        if B > self._batch:
            n = workspace_size(B, self.obs_dim, self.act_dim, self.actor.sizes, self.critic.sizes)
            self._work = np.empty(n, self.dtype)
            o, a = self.obs_dim, self.act_dim
            self._mb = (np.empty((B, o), self.dtype), np.empty((B, a), self.dtype),
                        np.empty(B, self.dtype), np.empty((B, o), self.dtype),
                        np.empty(B, self.dtype))
            self._idx = np.empty(B, np.int64)
            self._batch = B

    def _sync_t_in(self):
        self._t[0], self._t[1] = self.pi_optim.t, self.q_optim.t

    def _sync_t_out(self):
        self.pi_optim.t, self.q_optim.t = int(self._t[0]), int(self._t[1])

    # -- acting -------------------------------------------------------------------------------
    def act(self, obs, noise_scale=0.0, rng=None):
        """mu(obs) for one observation (obs_dim,) or a batch (B, obs_dim).

        With noise_scale > 0, adds Gaussian noise of std noise_scale * half (from ``rng``, a
        numpy Generator) and clips to [act_low, act_high].
        """
        obs = np.asarray(obs)
        single = obs.ndim == 1
        x = obs.reshape(1, -1) if single else obs
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape ({self.obs_dim},) or (batch, {self.obs_dim}), "
                             f"got {obs.shape}")
        u = self.actor.forward(x)
        action = self.mid + self.half * u
        if noise_scale > 0:
            rng = np.random.default_rng() if rng is None else rng
            action = action + noise_scale * self.half * rng.standard_normal(action.shape)
            action = np.clip(action, self.act_low, self.act_high)
        return action[0] if single else action

    # -- updating -----------------------------------------------------------------------------
    def check_batch(self, obs, act, rew, obs2, done):
        """Return the batch as C-contiguous arrays of the agent's dtype, or raise ValueError."""
        obs, act, obs2 = (np.asarray(v) for v in (obs, act, obs2))
        rew, done = np.asarray(rew), np.asarray(done)
        B = obs.shape[0] if obs.ndim == 2 else -1
        want = {"obs": (obs, (B, self.obs_dim)), "act": (act, (B, self.act_dim)),
                "rew": (rew, (B,)), "obs2": (obs2, (B, self.obs_dim)), "done": (done, (B,))}
        if B <= 0:
            raise ValueError(f"obs must have shape (batch, {self.obs_dim}) with batch >= 1, "
                             f"got {obs.shape}")
        out = []
        for name, (arr, shape) in want.items():
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape} to match obs {obs.shape} and "
                                 f"this agent (obs_dim={self.obs_dim}, act_dim={self.act_dim}), "
                                 f"got {arr.shape}")
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
            if not np.all(np.isfinite(arr)):
                bad = np.argwhere(~np.isfinite(arr))[0]
                raise ValueError(f"{name} has a non-finite value {arr[tuple(bad)]} at index "
                                 f"{tuple(int(i) for i in bad)}; drop or fix that transition")
            out.append(arr)
        return out

    _update_kernel = staticmethod(ddpg_update_kernel)
    _burst_kernel = staticmethod(ddpg_burst_kernel)

    def _kernel_nets(self):
        """The networks, optimiser state and hyperparameters, in the kernels' argument order."""
        return (self.actor.params, self.critic.params, self.actor_targ.params,
                self.critic_targ.params, self.actor._sizes_arr, self.critic._sizes_arr,
                self.mid, self.half, self._g_pi, self._g_q, self.pi_optim.m, self.pi_optim.v,
                self.q_optim.m, self.q_optim.v, self._t, self._hp)

    def _update_args(self):
        return self._kernel_nets()

    def update(self, obs, act, rew, obs2, done):
        """One update on a minibatch; returns {loss_q, loss_pi, q_mean, q_std}."""
        obs, act, rew, obs2, done = self.check_batch(obs, act, rew, obs2, done)
        self._workspace(obs.shape[0])
        self._sync_t_in()
        self._update_kernel(*self._update_args(), obs, act, rew, obs2, done,
                            self._work, self._stats)
        self._sync_t_out()
        return self._stats_dict(self._stats)

    def update_burst(self, buffer, batch_size, K):
        """K updates on minibatches sampled from ``buffer`` (a numddpg ReplayBuffer-like object
        with obs, act, rew, obs2, done arrays and ``size``) in one jitted call.

        Returns a (K, 4) float64 array of per-update statistics (loss_q, loss_pi, q_mean, q_std).
        """
        if buffer.size <= 0:
            raise ValueError("cannot sample from an empty replay buffer")
        B = check_dim("batch_size", batch_size)
        self._workspace(B)
        stats = np.empty((check_dim("K", K), N_STATS), np.float64)
        obs, act, rew, obs2, done = (v[:B] for v in self._mb)
        self._sync_t_in()
        self._burst_kernel(int(K), buffer.obs, buffer.act, buffer.rew, buffer.obs2, buffer.done,
                           buffer.size, self.rng_state, self._idx[:B], *self._kernel_nets(),
                           obs, act, rew, obs2, done, self._work, stats)
        self._sync_t_out()
        return stats

    def update_stepwise(self, obs, act, rew, obs2, done):
        """The same update as ``update``, one public kernel at a time (slower; for tests and
        for reading).  Numerically identical to ``update``."""
        obs, act, rew, obs2, done = self.check_batch(obs, act, rew, obs2, done)
        B, o = obs.shape[0], self.obs_dim
        # 1. target
        a2 = self.mid + self.half * self.actor_targ.forward(obs2)
        q2 = self.critic_targ.forward(np.concatenate([obs2, a2], axis=1))[:, 0]
        y = rew + self.gamma * (1.0 - done) * q2
        # 2. critic
        xq = np.concatenate([obs, act], axis=1)
        qv = self.critic.forward(xq)[:, 0]
        dq = (2.0 * (qv - y) / B).reshape(B, 1)
        g_q, _ = self.critic.backward(xq, dq, need_dx=False)
        self.q_optim.step(self.critic.params, g_q)
        # 3. actor through the updated critic
        u = self.actor.forward(obs)
        xpi = np.concatenate([obs, self.mid + self.half * u], axis=1)
        qpi = self.critic.forward(xpi)[:, 0]
        _, dx = self.critic.backward(xpi, np.full((B, 1), -1.0 / B, self.dtype))
        du = dx[:, o:] * self.half
        g_pi, _ = self.actor.backward(obs, du, need_dx=False)
        self.pi_optim.step(self.actor.params, g_pi)
        # 4. polyak
        polyak_update(self.actor_targ.params, self.actor.params, self.polyak)
        polyak_update(self.critic_targ.params, self.critic.params, self.polyak)
        return {"loss_q": float(np.mean((qv - y) ** 2)), "loss_pi": float(-np.mean(qpi)),
                "q_mean": float(np.mean(qv)), "q_std": float(np.std(qv))}

    # -- state --------------------------------------------------------------------------------
    def _state_arrays(self):
        """name -> the live array that holds that part of the agent's state."""
        return {"actor": self.actor.params, "critic": self.critic.params,
                "actor_targ": self.actor_targ.params, "critic_targ": self.critic_targ.params,
                "pi_m": self.pi_optim.m, "pi_v": self.pi_optim.v,
                "q_m": self.q_optim.m, "q_v": self.q_optim.v, "rng_state": self.rng_state}

    def config(self):
        """The constructor's arguments (JSON-friendly) that rebuild an agent of this shape."""
        return {"algo": self.algo, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "act_low": self.act_low.tolist(), "act_high": self.act_high.tolist(),
                "hidden_sizes": list(self.hidden_sizes), "gamma": self.gamma,
                "polyak": self.polyak, "pi_lr": self.pi_lr, "q_lr": self.q_lr,
                "dtype": self.dtype.name}

    def state_dict(self):
        """Copies of every array of the agent's state, plus the Adam step counts (ints)."""
        state = {k: v.copy() for k, v in self._state_arrays().items()}
        state["counters"] = self._counters()
        return state

    def _counters(self):
        return np.array([self.pi_optim.t, self.q_optim.t], np.int64)

    def _set_counters(self, c):
        self.pi_optim.t, self.q_optim.t = int(c[0]), int(c[1])

    def load_state_dict(self, state):
        """Copy a ``state_dict()`` into this agent in place (views and workspaces stay valid).
        Raises ValueError naming the first missing array or shape/dtype mismatch."""
        live = self._state_arrays()
        live["counters"] = self._counters()
        for name, arr in live.items():
            if name not in state:
                raise ValueError(f"state is missing {name!r}")
            new = np.asarray(state[name])
            if new.shape != arr.shape or new.dtype != arr.dtype:
                raise ValueError(f"state[{name!r}] has shape {new.shape} and dtype {new.dtype}, "
                                 f"this agent needs {arr.shape} {arr.dtype}")
        for name, arr in self._state_arrays().items():
            arr[...] = state[name]
        self._set_counters(state["counters"])

    @staticmethod
    def _stats_dict(s):
        return {"loss_q": float(s[ST_LOSS_Q]), "loss_pi": float(s[ST_LOSS_PI]),
                "q_mean": float(s[ST_Q_MEAN]), "q_std": float(s[ST_Q_STD])}


def td3_workspace_size(B, obs_dim, act_dim, sizes_pi, sizes_q):
    """Elements of the flat workspace ``td3_update_kernel`` carves for B rows (two more critics'
    activations than DDPG's)."""
    return workspace_size(B, obs_dim, act_dim, sizes_pi, sizes_q) + 2 * B * sum(sizes_q[1:])


class TD3Agent(DDPGAgent):
    """TD3 (Fujimoto et al. 2018): DDPGAgent's networks plus a second critic and its target.

    Extra parameters: target_noise and noise_clip (target policy smoothing, in units of the
    action half-range; 0.2 and 0.5), policy_delay (actor and polyak every policy_delay-th
    update; 2).  Attributes ``critic1``, ``critic2``, ``critic1_targ``, ``critic2_targ``
    (``critic``/``critic_targ`` name critic1 and its target).  The smoothing noise comes from the
    agent's own generator state ``rng_state``, as the minibatch indices do.
    """

    algo = "td3"

    def __init__(self, obs_dim, act_dim, act_low, act_high, hidden_sizes=(256, 256), gamma=0.99,
                 polyak=0.995, pi_lr=1e-3, q_lr=1e-3, dtype=np.float32, seed=None,
                 target_noise=0.2, noise_clip=0.5, policy_delay=2):
        if not (np.isfinite(target_noise) and target_noise >= 0):
            raise ValueError(f"target_noise must be >= 0 (a fraction of the action half-range), "
                             f"got {target_noise!r}")
        if not (np.isfinite(noise_clip) and noise_clip >= 0):
            raise ValueError(f"noise_clip must be >= 0 (a fraction of the action half-range), "
                             f"got {noise_clip!r}")
        self.policy_delay = check_dim("policy_delay", policy_delay)
        self.target_noise, self.noise_clip = float(target_noise), float(noise_clip)
        self._td3 = np.array([self.target_noise, self.noise_clip, self.policy_delay], np.float64)
        super().__init__(obs_dim, act_dim, act_low, act_high, hidden_sizes, gamma, polyak,
                         pi_lr, q_lr, dtype, seed)

    def _build_networks(self, rng):
        super()._build_networks(rng)
        self.critic1, self.critic1_targ, self.q1_optim = self.critic, self.critic_targ, self.q_optim
        o, a, h = self.obs_dim, self.act_dim, self.hidden_sizes
        self.critic2 = MLP([o + a, *h, 1], output="identity", dtype=self.dtype, rng=rng)
        self.critic2_targ = self.critic2.copy()
        self.q2_optim = Adam(self.critic2.n_params, self.q_lr, self.dtype)
        self._g_q2 = np.zeros(self.critic2.n_params, self.dtype)
        self._t = np.zeros(3, np.int64)       # [t_pi, t_q, n_updates]
        self.n_updates = 0

    def _workspace(self, B):
        grow = B > self._batch
        super()._workspace(B)
        if grow:
            self._work = np.empty(td3_workspace_size(B, self.obs_dim, self.act_dim,
                                                     self.actor.sizes, self.critic.sizes),
                                  self.dtype)

    def _sync_t_in(self):
        self._t[0], self._t[1], self._t[2] = self.pi_optim.t, self.q_optim.t, self.n_updates

    def _sync_t_out(self):
        self.pi_optim.t = int(self._t[0])
        self.q1_optim.t = self.q2_optim.t = int(self._t[1])
        self.n_updates = int(self._t[2])

    def _kernel_nets(self):
        """As DDPGAgent's, with both critics, their targets and moments, and the TD3 settings."""
        return (self.actor.params, self.critic1.params, self.critic2.params,
                self.actor_targ.params, self.critic1_targ.params, self.critic2_targ.params,
                self.actor._sizes_arr, self.critic._sizes_arr, self.mid, self.half,
                self._g_pi, self._g_q, self._g_q2, self.pi_optim.m, self.pi_optim.v,
                self.q1_optim.m, self.q1_optim.v, self.q2_optim.m, self.q2_optim.v,
                self._t, self._hp, self._td3)

    def _state_arrays(self):
        arrays = super()._state_arrays()
        arrays.update({"critic2": self.critic2.params, "critic2_targ": self.critic2_targ.params,
                       "q2_m": self.q2_optim.m, "q2_v": self.q2_optim.v})
        return arrays

    def config(self):
        cfg = super().config()
        cfg.update(target_noise=self.target_noise, noise_clip=self.noise_clip,
                   policy_delay=self.policy_delay)
        return cfg

    def _counters(self):
        return np.array([self.pi_optim.t, self.q_optim.t, self.n_updates], np.int64)

    def _set_counters(self, c):
        self.pi_optim.t = int(c[0])
        self.q1_optim.t = self.q2_optim.t = int(c[1])
        self.n_updates = int(c[2])

    _update_kernel = staticmethod(td3_update_kernel)
    _burst_kernel = staticmethod(td3_burst_kernel)

    def _update_args(self):
        return self._kernel_nets() + (self.rng_state,)

    def update_stepwise(self, obs, act, rew, obs2, done):
        raise NotImplementedError("TD3Agent has no step-by-step path; numddpg.reference.td3_update "
                                  "is its plain-NumPy twin")
