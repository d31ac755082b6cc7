"""DDPG's and TD3's update as named jitted steps on bundles of arrays (docs/math.md, sections 8-9).

One update on a minibatch (s, a, r, s', d) of B rows, networks on flat parameter vectors, in the
words of numddpg.kernels.reference:

    1. target_q, fold_q_target, bootstrap
                               y = r + gamma (1 - d) min_k Q_k_targ(s', mu_targ(s'))  (a constant)
       clip_targets            (clip_return) y <- clip(y, -1 / (1 - gamma), 0)
    2. critic_loss_and_grad    L_Q = sum_k mean (Q_k(s, a) - y)^2 ; dL_Q/dQ_ki = 2 (Q_ki - y_i) / B
       adam (+ polyak)         on each phi_k (and phi_k_targ <- rho phi_k_targ + (1 - rho) phi_k)
    3. actor_loss_and_grad     J = -mean Q_1(s, mu(s)) with the *updated* critic 1 held constant
                               (+ action_l2 mean u^2, u = tanh(MLP_theta(s)): action_penalty)
       adam (+ polyak)         on theta (and theta_targ)

with mu(s) = mid + half * tanh(MLP_theta(s)) and Q_k(s, a) = MLP_phi_k(concat(s, a)), for the
N >= 1 critics k = 1..N (DDPG's default N = 1, where the minimum is Q_targ itself; TD3's 2).  TD3
swaps in td3_target_q (target policy smoothing before the minimum) and runs step 3 and the polyak
updates on every policy_delay-th call.  ``ddpg_updates`` and ``td3_updates`` are those
compositions, K updates per call, each on the given minibatch or on one they sample
(numddpg.kernels.replay.sample_batch).

Bundles (namedtuples; Numba passes them as structs, so a kernel takes a handful of them instead of
thirty positional arrays):

    Net    params, targ (P,)   the network and its target       m, v (P,)   Adam moments
           grad (C, P)         chunk c's part of dL/dparams     sizes (L+1,) int64 layer widths
    critics                    critic 1's Net (``critic``), critic 2's (``second``) and a
                               tuple of the Nets of critics 3..N (``more``), the last two
                               None where there are none ("Optional parts" below)
    Batch  obs (B, o), act (B, a), rew (B,), obs2 (B, o), done (B,); discount (B,) float64,
           the n-step targets' bootstrap weights, or None: one-step targets (bootstrap_weight)
    Work   the update's scratch, carved by ``carve_work`` from one flat array of ``work_size``
           elements, from the slot list ``work_slots`` (one list: names, shapes, size)
    HP     the hyperparameters as floats (Adam's betas, eps and weight decay among them)

Compilation.  The named steps are inlined into the two update kernels (``inline="always"``):
Numba re-optimises every callee's code inside each caller it is linked into, so the steps
compiled one by one cost 22.4 s of cold compile for DDPG against 14.5 s inlined
(bench/RESULTS.md, "Cold and warm start").

Row chunks.  Every step up to a gradient is row-local, so the B rows are cut into C chunks of
consecutive rows (``chunk_rows``): each chunk runs its target, forward and backward passes on its
own rows and activations and leaves its part of the gradient in grad[c]; the Adam step adds the
C parts (``reduce_chunks``).  C = 1 is the plain serial update.  With C > 1, n threads (Python
threads running the same ``nogil`` kernel, numddpg.engine.agents) share the chunks and the Adam
steps' parameter ranges, meeting at a barrier between stages (numddpg.kernels.sync); BLAS runs
single-threaded in each.  The numbers depend on C alone, not on how many threads run the
chunks: a run may change its thread count (a busy machine) and stay bit-identical.
"""
from collections import namedtuple

import numpy as np
from numba import njit

from . import rng as _rng
from .nn import mlp_backward, mlp_forward
from .optim import adam_coefficients, adam_decay_span, adam_polyak_span
from .replay import sample_batch, sample_nstep
from .sync import barrier

Net = namedtuple("Net", ["params", "targ", "grad", "m", "v", "sizes"])
# discount: each row's bootstrap weight gamma^m (1 - d) of an n-step minibatch (B,) float64
# (numddpg.kernels.replay.gather_nstep), read by the n-step kernels only; None in a one-step
# minibatch (targets gamma (1 - d)): an array the plain kernels' bundle does not carry.
Batch = namedtuple("Batch", ["obs", "act", "rew", "obs2", "done", "discount"],
                   defaults=(None,))
# TD3's three settings default to no target smoothing and an actor step on every update: DDPG
# is TD3 with one critic and these (ddpg_updates does not read them).  Adam's weight decay
# defaults to none (decoupled_weight_decay: 1.0 AdamW's, 0.0 Adam's L2; numddpg.kernels.optim).
# The action penalty and the clip of the targets are not in HP: they come as optional-part
# arguments (kernel_parts, below), None when off, so that a kernel without them compiles none of
# their loops.
HP = namedtuple("HP", ["gamma", "polyak", "pi_lr", "q_lr", "beta1", "beta2", "eps",
                       "target_noise", "noise_clip", "policy_delay", "weight_decay",
                       "decoupled_weight_decay"],
                defaults=(0.0, 0.0, 1.0, 0.0, 1.0))
WORK_FIELDS = ["acts_pi", "acts_pi_targ", "acts_q", "acts_q_targ", "delta_buf", "dh_buf", "xq",
               "y", "dq", "da", "eps", "part"]
Work = namedtuple("Work", WORK_FIELDS)

# Columns of the per-update statistics (stats) and of the per-chunk partial sums (work.part).
ST_LOSS_Q, ST_LOSS_PI, ST_Q_MEAN, ST_Q_STD = range(4)
N_STATS = 4


# ---------------------------------------------------------------------------------------------
# The workspace: one slot list gives the names, the shapes and the allocation's size
# ---------------------------------------------------------------------------------------------

def work_slots(B, C, obs_dim, act_dim, sizes_pi, sizes_q, smoothing):
    """[(name, shape)] of the update's scratch for B rows in C chunks of Bc = ceil(B / C) rows,
    in Work's field order.  Per chunk (leading axis C): the activations h_1..h_L of each network
    pass (nn.acts_size; the critics take turns in acts_q and acts_q_targ: each critic's forward
    pass is spent, by its backward pass or by the minimum, before the next one's) and
    mlp_backward's scratch for delta and dh.  Per row (chunk c uses rows chunk_rows(B, C, c)):
    the critic input xq = concat(s, a); the targets y; dq = dLoss/dQ; da = dJ/da, then (scaled
    in place) dJ/du; with ``smoothing`` (TD3) the target smoothing's draws eps.  part (C, 4):
    each chunk's partial sums of the statistics."""
    Bc = -(-B // C)
    n_pi = Bc * sum(sizes_pi[1:])
    n_q = Bc * sum(sizes_q[1:])
    width = max(max(sizes_pi), max(sizes_q))
    shapes = {"acts_pi": (C, n_pi), "acts_pi_targ": (C, n_pi),
              "acts_q": (C, n_q), "acts_q_targ": (C, n_q),
              "delta_buf": (C, Bc * width), "dh_buf": (C, Bc * width),
              "xq": (B, obs_dim + act_dim), "y": (B,), "dq": (B, 1), "da": (B, act_dim),
              "eps": (B if smoothing else 0, act_dim), "part": (C, N_STATS)}
    return [(name, shapes[name]) for name in WORK_FIELDS]


# Slots kept in float64 whatever the networks' dtype, apart from the flat allocation: TD3's
# smoothing draws, as the generator makes them (rounding them to float32 would change a run).
FLOAT64_SLOTS = ("eps",)


def work_size(slots):
    """Elements of the flat allocation that holds every slot (but FLOAT64_SLOTS)."""
    return sum(int(np.prod(shape)) for name, shape in slots if name not in FLOAT64_SLOTS)


def carve_work(flat, slots):
    """The Work bundle of views into ``flat`` (>= work_size(slots) elements), slot after slot;
    FLOAT64_SLOTS get arrays of their own."""
    views, off = [], 0
    for name, shape in slots:
        n = int(np.prod(shape))
        if name in FLOAT64_SLOTS:
            views.append(np.zeros(shape, np.float64))
            continue
        views.append(flat[off:off + n].reshape(shape))
        off += n
    return Work(*views)


# ---------------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def chunk_rows(B, C, c):
    """Rows r0..r1-1 of chunk c when B rows are cut into C chunks of ceil(B / C) rows."""
    Bc = (B + C - 1) // C
    r0 = min(B, c * Bc)
    return r0, min(B, r0 + Bc)


@njit(cache=True, inline="always")
def _runtime_flags(sizes):
    """(True, False) as run-time values rather than literals.  Numba compiles a separate
    specialisation of a callee for every literal argument (tanh_out=True, tanh_out=False);
    passing these instead makes one compiled mlp_forward and one mlp_backward serve every call
    of an update, which cuts the first run's compile time by about a third."""
    yes = sizes.shape[0] > 0
    return yes, not yes


@njit(cache=True, inline="always")
def _runtime_zero(sizes):
    """0 as a run-time value, for the same reason: a literal dx_col0=0 beside the actor
    step's dx_col0=o compiled mlp_backward twice (2.2 s of a cold start)."""
    return sizes.shape[0] * 0


@njit(cache=True, inline="always")
def copy_into(dst, col0, src):
    """dst[:, col0:col0 + k] = src (B, k), as loops: Numba's broadcasting slice assignment costs
    seconds of compile time per call site's signature, this costs nothing."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, col0 + j] = src[i, j]


@njit(cache=True, inline="always")
def scale_action(u, mid, half, out):
    """out = mid + half * u, row by row: the action from the actor's tanh output u (B, act)."""
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            out[i, j] = mid[j] + half[j] * u[i, j]


# ---------------------------------------------------------------------------------------------
# The named steps, on the rows r0..r1-1 of chunk c (reference.py's functions of the same names)
# ---------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def target_actor(actor, batch, work, c, r0, r1):
    """u2 = tanh(MLP_theta_targ(s')) (rows, act) on rows r0:r1, with s' copied into the critic
    input's observation columns, xq = concat(s', .): the action columns are the caller's."""
    tanh_out, _ = _runtime_flags(actor.sizes)
    obs2 = batch.obs2[r0:r1]
    u2 = mlp_forward(actor.targ, actor.sizes, tanh_out, obs2, work.acts_pi_targ[c])
    copy_into(work.xq[r0:r1], 0, obs2)
    return u2


@njit(cache=True, inline="always")
def target_q(actor, critic, mid, half, batch, work, c, r0, r1):
    """Q_1_targ(s', mu_targ(s')) (rows,) on rows r0:r1: the target action a2 = mid + half u2
    into the critic input xq = concat(s', a2) (work.xq[r0:r1], which the later critics' passes
    read too), then critic 1's target pass in work.acts_q_targ[c]."""
    o = batch.obs.shape[1]
    xq = work.xq[r0:r1]
    u2 = target_actor(actor, batch, work, c, r0, r1)
    scale_action(u2, mid, half, xq[:, o:])
    _, identity_out = _runtime_flags(critic.sizes)
    q1 = mlp_forward(critic.targ, critic.sizes, identity_out, xq, work.acts_q_targ[c])
    return q1[:, 0]


@njit(cache=True, inline="always")
def td3_target_q(actor, critic, mid, half, hp, batch, work, c, r0, r1):
    """target_q with TD3's smoothed target action a2 = clip(mu_targ(s') + clip(target_noise half
    eps, -noise_clip half, +noise_clip half), low, high), eps = work.eps (standard normal
    draws)."""
    o = batch.obs.shape[1]
    xq = work.xq[r0:r1]
    u2 = target_actor(actor, batch, work, c, r0, r1)
    for i in range(r1 - r0):
        for j in range(u2.shape[1]):
            clip = hp.noise_clip * half[j]
            noise = min(max(hp.target_noise * half[j] * work.eps[r0 + i, j], -clip), clip)
            a2 = mid[j] + half[j] * u2[i, j] + noise
            xq[i, o + j] = min(max(a2, mid[j] - half[j]), mid[j] + half[j])
    _, identity_out = _runtime_flags(critic.sizes)
    q1 = mlp_forward(critic.targ, critic.sizes, identity_out, xq, work.acts_q_targ[c])
    return q1[:, 0]


@njit(cache=True, inline="always")
def fold_q_target(net, work, c, r0, r1, q_min):
    """work.y[r0:r1] = min(q_min, Q_targ(xq)) for one more critic ``net``: q_min (the minimum so
    far: critic 1's column, or this view itself) copied first, since the pass reuses the
    activations critic 1's column lives in; returns the view.  min_k Q_k_targ is critic 1's
    target_q folded with critics 2..N in turn."""
    _, identity_out = _runtime_flags(net.sizes)
    xq, y = work.xq[r0:r1], work.y[r0:r1]
    for i in range(r1 - r0):
        y[i] = q_min[i]
    q_targ = mlp_forward(net.targ, net.sizes, identity_out, xq, work.acts_q_targ[c])
    for i in range(r1 - r0):
        y[i] = min(y[i], q_targ[i, 0])
    return y


@njit(cache=True, inline="always")
def bootstrap(gamma, batch, work, r0, r1, discount, q_min):
    """work.y[r0:r1] = r + gamma (1 - d) q_min for the rows' q_min (min_k Q_k_targ); with a
    ``discount`` (an n-step minibatch's batch.discount, gamma^m (1 - d) per row: docs/math.md
    section 12), r + discount q_min.  (q_min may be work.y[r0:r1] itself.)"""
    y, rew = work.y[r0:r1], batch.rew[r0:r1]
    if discount is not None:
        weight = discount[r0:r1]
        for i in range(r1 - r0):
            y[i] = rew[i] + weight[i] * q_min[i]
    else:
        done = batch.done[r0:r1]
        for i in range(r1 - r0):
            y[i] = rew[i] + gamma * (1.0 - done[i]) * q_min[i]


def return_floor(gamma):
    """-1 / (1 - gamma) (-inf when gamma = 1): the least discounted return of rewards in
    [-1, 0], as a goal env's; the lower end of clip_return's range [return_floor, 0]."""
    return -1.0 / (1.0 - gamma) if gamma < 1.0 else -np.inf


@njit(cache=True)
def clip_targets(y, r0, r1, low):
    """y[r0:r1] clipped to [low, 0], low = return_floor(gamma): the range of a discounted
    return whose rewards all lie in [-1, 0] (the HER papers' clip_return).  Written as
    comparisons so that a NaN target stays NaN for the guard."""
    for i in range(r0, r1):
        if y[i] < low:
            y[i] = low
        elif y[i] > 0.0:
            y[i] = 0.0


@njit(cache=True, inline="always")
def critic_loss_and_grad(critic, acts_q, batch, work, c, r0, r1, B):
    """The rows' part of L_Q = mean (Q(s, a) - y)^2 and of dL_Q/dphi (into critic.grad[c]), with
    dL_Q/dQ_i = 2 (Q_i - y_i) / B.  Returns the rows' sum (Q - y)^2, sum Q and sum Q^2."""
    tanh_out, identity_out = _runtime_flags(critic.sizes)
    o = batch.obs.shape[1]
    xq = work.xq[r0:r1]
    copy_into(xq, 0, batch.obs[r0:r1])      # xq = concat(s, a)
    copy_into(xq, o, batch.act[r0:r1])
    q = mlp_forward(critic.params, critic.sizes, identity_out, xq, acts_q)
    dq = work.dq[r0:r1]
    sq_err = 0.0
    q_sum = 0.0
    q_sq = 0.0
    for i in range(r1 - r0):
        err = q[i, 0] - work.y[r0 + i]
        sq_err += err * err
        dq[i, 0] = 2.0 * err / B
        q_sum += q[i, 0]
        q_sq += q[i, 0] * q[i, 0]
    mlp_backward(critic.params, critic.sizes, identity_out, xq, acts_q, dq, critic.grad[c],
                 work.da[:0], _runtime_zero(critic.sizes), work.delta_buf[c], work.dh_buf[c])
    return sq_err, q_sum, q_sq


@njit(cache=True)
def action_penalty(u, du, action_l2, B):
    """The rows' part of the action penalty action_l2 mean(u^2), the mean over the B rows and
    the k action columns of u = tanh(MLP_theta(s)) (rows, k), and its gradient added to du:
    dJ/du += 2 action_l2 u / (B k).  Returns the rows' sum of action_l2 sum_j u^2 / k."""
    k = u.shape[1]
    coef = 2.0 * action_l2 / (B * k)
    total = 0.0
    for i in range(u.shape[0]):
        for j in range(k):
            total += u[i, j] * u[i, j]
            du[i, j] += coef * u[i, j]
    return action_l2 * total / k


@njit(cache=True, inline="always")
def actor_loss_and_grad(actor, critic, acts_q, mid, half, batch, work, c, r0, r1, B, action_l2):
    """The rows' part of J = -mean Q(s, mu(s)) (+ action_l2 mean u^2) and of dJ/dtheta (into
    actor.grad[c]), the critic held constant: dJ/dQ_i = -1/B -> the critic's input gradient,
    action columns: dJ/da -> dJ/du = half * dJ/da (+ the penalty's, when action_l2 is not 0)
    -> through tanh into theta (the penalty only with an ``action_l2``: None compiles none).
    Returns the rows' sum of -Q (+ the penalty's part)."""
    tanh_out, identity_out = _runtime_flags(actor.sizes)
    o = batch.obs.shape[1]
    obs = batch.obs[r0:r1]
    xq = work.xq[r0:r1]
    u = mlp_forward(actor.params, actor.sizes, tanh_out, obs, work.acts_pi[c])
    copy_into(xq, 0, obs)                   # xq = concat(s, mu(s))
    scale_action(u, mid, half, xq[:, o:])
    q = mlp_forward(critic.params, critic.sizes, identity_out, xq, acts_q)
    dq = work.dq[r0:r1]
    neg_q = 0.0
    for i in range(r1 - r0):
        neg_q -= q[i, 0]
        dq[i, 0] = -1.0 / B
    da = work.da[r0:r1]                       # dJ/da: the action columns of the input gradient
    mlp_backward(critic.params, critic.sizes, identity_out, xq, acts_q, dq, critic.grad[c][:0],
                 da, o, work.delta_buf[c], work.dh_buf[c])
    du = da                                   # a = mid + half * u  =>  dJ/du = half * dJ/da,
    for i in range(r1 - r0):                  # in place: da is spent
        for j in range(du.shape[1]):
            du[i, j] *= half[j]
    if action_l2 is not None:
        neg_q += action_penalty(u, du, action_l2, B)
    mlp_backward(actor.params, actor.sizes, tanh_out, obs, work.acts_pi[c], du, actor.grad[c],
                 du[:0], _runtime_zero(actor.sizes), work.delta_buf[c], work.dh_buf[c])
    return neg_q


# ---------------------------------------------------------------------------------------------
# Adam (+ polyak) on a network, its parameters split into C ranges
# ---------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def reduce_chunks(grad, lo, hi):
    """grad[0, lo:hi] += grad[c, lo:hi] for c >= 1: the gradient is the sum of the chunks'."""
    total = grad[0, lo:hi]
    for c in range(1, grad.shape[0]):
        part = grad[c, lo:hi]
        for i in range(total.shape[0]):   # (from 0: see optim.adam_polyak_span)
            total[i] += part[i]


@njit(cache=True, inline="always")
def adam(net, t, lr, hp, average, c, weight_decay):
    """Range c of C (C = the chunks) of one Adam step on net.params from the sum of net.grad's
    chunks, step number t; when ``average`` the polyak update of net.targ in the same pass
    (optim.adam_polyak_span; with a ``weight_decay``, hp's, adam_decay_span; None compiles
    none).
    After all C ranges, net.grad[0] holds the whole gradient."""
    C = net.grad.shape[0]
    lo, hi = chunk_rows(net.params.shape[0], C, c)
    coef = adam_coefficients(net.params, t, lr, hp.beta1, hp.beta2, hp.eps, hp.polyak,
                             hp.weight_decay, hp.decoupled_weight_decay)
    reduce_chunks(net.grad, lo, hi)
    if weight_decay is not None:
        adam_decay_span(net.params, net.grad[0], net.m, net.v, coef, net.targ, average, lo, hi)
    else:
        adam_polyak_span(net.params, net.grad[0], net.m, net.v, coef, net.targ, average, lo, hi)


# ---------------------------------------------------------------------------------------------
# The steps of one chunk, as the updates call them
# ---------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def record_critic_part(work, c, sq_err, q_sum, q_sq):
    """work.part[c]: the chunk's sum of the critics' squared errors (L_Q = the sum of their
    MSEs), and critic 1's sum Q and sum Q^2."""
    work.part[c, ST_Q_MEAN] = q_sum
    work.part[c, ST_Q_STD] = q_sq
    work.part[c, ST_LOSS_Q] = sq_err


@njit(cache=True, inline="always")
def actor_step(actor, critic, mid, half, batch, work, c, action_l2):
    """Step 3 on chunk c: J's part and its gradient in actor.grad[c], ``critic`` held constant
    (the action penalty only with an ``action_l2``)."""
    B = batch.obs.shape[0]
    r0, r1 = chunk_rows(B, work.part.shape[0], c)
    work.part[c, ST_LOSS_PI] = actor_loss_and_grad(actor, critic, work.acts_q[c], mid, half,
                                                   batch, work, c, r0, r1, B, action_l2)


@njit(cache=True, inline="always")
def write_stats(work, B, stats, with_actor):
    """stats = [loss_q, loss_pi (NaN without an actor step), mean Q(s, a), std Q(s, a)] from the
    chunks' partial sums."""
    part = work.part
    loss_q = 0.0
    loss_pi = 0.0
    q_sum = 0.0
    q_sq = 0.0
    for c in range(part.shape[0]):
        loss_q += part[c, ST_LOSS_Q]
        loss_pi += part[c, ST_LOSS_PI]
        q_sum += part[c, ST_Q_MEAN]
        q_sq += part[c, ST_Q_STD]
    q_mean = q_sum / B
    stats[ST_LOSS_Q] = loss_q / B
    stats[ST_LOSS_PI] = loss_pi / B if with_actor else np.nan
    stats[ST_Q_MEAN] = q_mean
    stats[ST_Q_STD] = np.sqrt(max(q_sq / B - q_mean * q_mean, 0.0))


@njit(cache=True, inline="always")
def draw_smoothing_noise(rng_state, eps):
    """eps[i, j] ~ N(0, 1) in row-major order from the agent's generator."""
    for i in range(eps.shape[0]):
        for j in range(eps.shape[1]):
            eps[i, j] = _rng.normal(rng_state)


# ---------------------------------------------------------------------------------------------
# The updates.  Thread ``me`` of n runs the chunks (and Adam ranges) me, me + n, ...; the threads
# meet at a barrier between stages (numddpg.kernels.sync).  Thread 0 alone samples, draws noise and
# counts steps.  With n == 1 one thread runs every chunk and the barriers cost nothing.
#
# Optional parts.  The parts of an update that only some runs use are compiled into a kernel only
# when its run uses them.  Each comes as a trailing argument that is None when the run does not use
# it: ``discount`` (an n-step minibatch's batch.discount, first since it comes with each call),
# ``second`` (critic 2) and ``more`` (a tuple of critics 3..N), ``return_floor`` (clip_return's
# lower bound), ``action_l2`` (the penalty's weight), ``weight_decay`` (Adam's, whose value the
# kernel reads from HP; this argument only switches it on).  Numba compiles a kernel per set of
# argument types, and drops the branches that an ``is None`` test of a NoneType argument turns off
# before typing them: a plain run compiles no later critics, n-step sampling, target clipping,
# action penalty or weight decay (bench/RESULTS.md, "Kernels for the features a run uses"), and the
# kernel is an ordinary module function that Numba caches on disk (a closure's flags, the way
# before, are not: every process compiled its kernels again).  Numba drops the kernel's own branches
# before it inlines its callees, and a callee's only after: so the critics past the first, whose
# steps are inlined, are branched on in the kernels themselves, and a branch in an inlined step
# calls only functions that are not inlined (clip_targets, action_penalty, sample_nstep,
# adam_decay_span): an inlined one would cost its compile in every kernel (the later critics' steps
# as functions of their own cost TD3's cold start 2.3 s more, measured). ``kernel_parts`` gives an
# agent's.
# The kernels compose the critic phase (target, clipping, losses) themselves rather than through
# a step of its own: each level of inlining copies every argument into the callee's parameters,
# and that level cost 0.4-0.6 s of DDPG's cold start (bench/RESULTS.md).
# ---------------------------------------------------------------------------------------------

def kernel_parts(critics, gamma, clip_return, action_l2, weight_decay):
    """(second, more, return_floor, action_l2, weight_decay): the optional-part arguments of
    the update kernels that follow the minibatch's discount (which comes with each call), for
    the tuple of ``critics`` (Net bundles), the discount ``gamma``, whether the run clips
    returns, and its action penalty's and Adam's weight decay's coefficients; each None when
    not used (a coefficient of 0)."""
    return (critics[1] if len(critics) > 1 else None,
            tuple(critics[2:]) if len(critics) > 2 else None,
            return_floor(gamma) if clip_return else None,
            float(action_l2) if action_l2 else None,
            float(weight_decay) if weight_decay else None)


@njit(cache=True, nogil=True)
def ddpg_updates(me, n, K, sample, replay, size, rng_state, idx, actor, critic, mid, half, hp, t,
                 batch, work, stats, flags, discount, second, more, return_floor, action_l2,
                 weight_decay):
    """K DDPG updates (module docstring), in place, on critic 1 ``critic`` and the optional
    parts (above: critics 2..N among them).  With ``sample``, each on a minibatch of B =
    idx.shape[0] rows drawn uniformly with replacement from the first ``size`` rows of
    ``replay`` into ``batch``; without, all K on ``batch`` as given.  t (2,) int64 = [t_pi,
    t_q], incremented; stats (K, 4): loss_q (the sum of the critics' MSEs), loss_pi, mean and
    std of Q_1(s, a) of each update."""
    C = work.part.shape[0]
    B = batch.obs.shape[0]
    gen = flags[me, 0]                    # (barriers passed so far: numddpg.kernels.sync)
    for k in range(K):
        if me == 0 and sample:
            if discount is not None:
                sample_nstep(replay, size, rng_state, idx, batch)
            else:
                sample_batch(replay, size, rng_state, idx, batch)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        for c in range(me, C, n):                      # 1-2: y, dL_Q/dphi_k
            r0, r1 = chunk_rows(B, C, c)
            q_min = target_q(actor, critic, mid, half, batch, work, c, r0, r1)
            if second is not None:
                q_min = fold_q_target(second, work, c, r0, r1, q_min)
                if more is not None:
                    for j in range(len(more)):
                        q_min = fold_q_target(more[j], work, c, r0, r1, q_min)
            bootstrap(hp.gamma, batch, work, r0, r1, discount, q_min)
            if return_floor is not None:
                clip_targets(work.y, r0, r1, return_floor)
            sq_err, q_sum, q_sq = critic_loss_and_grad(critic, work.acts_q[c], batch, work, c,
                                                       r0, r1, B)
            if second is not None:
                sq_err += critic_loss_and_grad(second, work.acts_q[c], batch, work, c, r0, r1,
                                               B)[0]
                if more is not None:
                    for j in range(len(more)):
                        sq_err += critic_loss_and_grad(more[j], work.acts_q[c], batch, work, c,
                                                       r0, r1, B)[0]
            record_critic_part(work, c, sq_err, q_sum, q_sq)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        for c in range(me, C, n):                      # Adam on phi_k, polyak on phi_k_targ
            adam(critic, t[1] + 1, hp.q_lr, hp, True, c, weight_decay)   # (fused: phi_k_targ
            if second is not None:                                       # is not read again)
                adam(second, t[1] + 1, hp.q_lr, hp, True, c, weight_decay)
            if more is not None:
                for j in range(len(more)):
                    adam(more[j], t[1] + 1, hp.q_lr, hp, True, c, weight_decay)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        for c in range(me, C, n):                      # 3: dJ/dtheta through the new critic 1
            actor_step(actor, critic, mid, half, batch, work, c, action_l2)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        for c in range(me, C, n):                      # Adam on theta, polyak on theta_targ
            adam(actor, t[0] + 1, hp.pi_lr, hp, True, c, weight_decay)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        if me == 0:
            t[0] += 1
            t[1] += 1
            write_stats(work, B, stats[k], True)


@njit(cache=True, nogil=True)
def td3_updates(me, n, K, sample, replay, size, rng_state, idx, actor, critic, mid, half, hp, t,
                batch, work, stats, flags, discount, second, more, return_floor, action_l2,
                weight_decay):
    """K TD3 updates (docs/math.md, "TD3"), as ddpg_updates: always a step on every critic;
    the actor step (on Q_1) and polyak on all targets on every policy_delay-th update.
    t (3,) int64 = [t_pi, t_q, n_updates]; the smoothing draws come from rng_state after
    each minibatch's indices; loss_pi is NaN on updates without an actor step, loss_q the
    sum of the critics' MSEs."""
    C = work.part.shape[0]
    B = batch.obs.shape[0]
    gen = flags[me, 0]                    # (barriers passed so far: numddpg.kernels.sync)
    for k in range(K):
        if me == 0:
            if sample:
                if discount is not None:
                    sample_nstep(replay, size, rng_state, idx, batch)
                else:
                    sample_batch(replay, size, rng_state, idx, batch)
            draw_smoothing_noise(rng_state, work.eps)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        for c in range(me, C, n):                      # 1-2: the smoothed y, dL_Q/dphi_k
            r0, r1 = chunk_rows(B, C, c)
            q_min = td3_target_q(actor, critic, mid, half, hp, batch, work, c, r0, r1)
            if second is not None:
                q_min = fold_q_target(second, work, c, r0, r1, q_min)
                if more is not None:
                    for j in range(len(more)):
                        q_min = fold_q_target(more[j], work, c, r0, r1, q_min)
            bootstrap(hp.gamma, batch, work, r0, r1, discount, q_min)
            if return_floor is not None:
                clip_targets(work.y, r0, r1, return_floor)
            sq_err, q_sum, q_sq = critic_loss_and_grad(critic, work.acts_q[c], batch, work, c,
                                                       r0, r1, B)
            if second is not None:
                sq_err += critic_loss_and_grad(second, work.acts_q[c], batch, work, c, r0, r1,
                                               B)[0]
                if more is not None:
                    for j in range(len(more)):
                        sq_err += critic_loss_and_grad(more[j], work.acts_q[c], batch, work, c,
                                                       r0, r1, B)[0]
            record_critic_part(work, c, sq_err, q_sum, q_sq)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        # On a policy_delay-th update the targets are averaged after its steps; nothing reads
        # the critics' targets in between, so each critic's polyak rides in its Adam pass.
        delayed = (t[2] + 1) % int(hp.policy_delay) == 0
        for c in range(me, C, n):
            adam(critic, t[1] + 1, hp.q_lr, hp, delayed, c, weight_decay)
            if second is not None:
                adam(second, t[1] + 1, hp.q_lr, hp, delayed, c, weight_decay)
            if more is not None:
                for j in range(len(more)):
                    adam(more[j], t[1] + 1, hp.q_lr, hp, delayed, c, weight_decay)
        gen = barrier(flags, me, n, gen)
        if gen < 0:
            return
        if delayed:
            for c in range(me, C, n):
                actor_step(actor, critic, mid, half, batch, work, c, action_l2)
            gen = barrier(flags, me, n, gen)
            if gen < 0:
                return
            for c in range(me, C, n):
                adam(actor, t[0] + 1, hp.pi_lr, hp, True, c, weight_decay)
            gen = barrier(flags, me, n, gen)
            if gen < 0:
                return
        if me == 0:
            t[0] += 1 if delayed else 0
            t[1] += 1
            t[2] += 1
            write_stats(work, B, stats[k], delayed)
