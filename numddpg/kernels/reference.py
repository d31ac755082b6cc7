"""The whole of numddpg's math in plain NumPy, written to be read: the textbook twin of the kernels.

Nothing here is fast and nothing here is jitted.  Each function is the formula of the same
name in docs/math.md, in the CS231n style: ``*_forward`` returns (out, cache) and ``*_backward``
takes (dout, cache) and returns the gradients.  The tests hold the Numba kernels equal to these
functions in float64.

Shapes: B batch rows, n_in/n_out layer widths, o = obs_dim, k = act_dim, P parameters.
Names are docs/math.md's notation table, shared with the kernels: theta, phi (phi1, phi2, ...
when there are several critics: critic_suffixes) the flat parameters of actor and critic(s),
dtheta, dphi their gradients, the suffixes pi and q (q1, q2, ...) for what belongs to the actor
or a critic (sizes_pi, m_pi, t_pi, pi_lr), y the TD target, q the critic's values,
dq = dLoss/dq, da = dJ/da, du = dJ/du.  Scalars keep the
math's symbols too: rho is the hyperparameter polyak (a parameter called polyak would also hide
the function of that name), gamma, pi_lr and q_lr are themselves.
"""
import numpy as np


# --- layers ----------------------------------------------------------------------------------

def dense_forward(x, W, b):
    """z = x @ W + b.   x (B, n_in), W (n_in, n_out), b (n_out,) -> z (B, n_out)."""
    return x @ W + b, (x, W)


def dense_backward(dz, cache):
    """Forward was z = x @ W + b, so dx = dz @ W^T, dW = x^T @ dz, db = sum_rows dz."""
    x, W = cache
    return dz @ W.T, x.T @ dz, dz.sum(axis=0)


def relu_forward(z):
    """h = max(z, 0)."""
    return np.maximum(z, 0), z


def relu_backward(dh, z):
    """relu'(z) = [z > 0], so dz = dh * [z > 0]."""
    return dh * (z > 0)


def tanh_forward(z):
    """u = tanh(z)."""
    u = np.tanh(z)
    return u, u


def tanh_backward(du, u):
    """tanh'(z) = 1 - tanh(z)^2 = 1 - u^2, so dz = du * (1 - u^2)."""
    return du * (1 - u * u)


# --- the MLP on a flat parameter vector --------------------------------------------------------

def unflatten(params, sizes):
    """[(W_l, b_l)] views of the flat layout W_0, b_0, W_1, b_1, ... (row-major W)."""
    layers, p = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = params[p:p + n_in * n_out].reshape(n_in, n_out)
        p += n_in * n_out
        b = params[p:p + n_out]
        p += n_out
        layers.append((W, b))
    return layers


def mlp_forward(params, sizes, output, x):
    """ReLU hidden layers, then an identity or tanh output.  Returns (h_L (B, n_L), cache)."""
    caches = []
    h = x
    layers = unflatten(params, sizes)
    for l, (W, b) in enumerate(layers):
        z, dense_cache = dense_forward(h, W, b)
        if l < len(layers) - 1:
            h, act_cache = relu_forward(z)
            kind = "relu"
        elif output == "tanh":
            h, act_cache = tanh_forward(z)
            kind = "tanh"
        else:
            act_cache, kind = None, "identity"
            h = z
        caches.append((dense_cache, kind, act_cache))
    return h, caches


def mlp_backward(dout, cache):
    """Gradients from dout = dL/dh_L: returns (grad = dL/dparams (P,) in the flat layout,
    dx (B, n_0))."""
    grads = []
    dh = dout
    for dense_cache, kind, act_cache in reversed(cache):
        if kind == "relu":
            dz = relu_backward(dh, act_cache)
        elif kind == "tanh":
            dz = tanh_backward(dh, act_cache)
        else:
            dz = dh
        dh, dW, db = dense_backward(dz, dense_cache)
        grads.append((dW, db))
    grad = np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in reversed(grads)])
    return grad, dh


# --- DDPG's losses and their gradients ---------------------------------------------------------
#
# The chain rule of the losses is written once, here.  Each function takes the MLP's two passes
# as ``forward`` and ``backward`` (mlp_forward's and mlp_backward's contracts; these by default):
# numddpg.kernels.gradcheck passes the Numba kernels' instead, so that the same chain, run around
# the kernels' passes, is checked against finite differences of the losses computed here.

def actor_action(theta, sizes_pi, mid, half, obs, forward=mlp_forward):
    """mu(s) = mid + half * tanh(MLP_theta(s)).  Returns (a (B, k), u (B, k), cache)."""
    u, cache = forward(theta, sizes_pi, "tanh", obs)
    return mid + half * u, u, cache


def critic_value(phi, sizes_q, obs, act, forward=mlp_forward):
    """Q(s, a) = MLP_phi(concat(s, a)) squeezed to (B,).  Returns (q, cache)."""
    q, cache = forward(phi, sizes_q, "identity", np.concatenate([obs, act], axis=1))
    return q[:, 0], cache


def min_q_target(phi_targ, sizes_q, obs2, a2):
    """min_k Q_k_targ(s', a2) (B,) over the critics' target parameters phi_targ: (P,) for one
    critic (its Q_targ itself), (n, P) or a list of n arrays for n critics."""
    return np.min([critic_value(phi, sizes_q, obs2, a2)[0] for phi in np.atleast_2d(phi_targ)],
                  axis=0)


def bootstrap_weight(gamma, done, discount=None):
    """gamma (1 - d) (B,), or an n-step minibatch's own discount gamma^m (1 - d) (B,)."""
    return gamma * (1 - done) if discount is None else discount


def td_target(theta_targ, phi_targ, sizes_pi, sizes_q, mid, half, gamma, rew, obs2, done,
              discount=None):
    """y = r + gamma (1 - d) min_k Q_k_targ(s', mu_targ(s')) — a constant for the critic step;
    phi_targ as min_q_target takes it (one critic: y = r + gamma (1 - d) Q_targ(s', .)).  With
    n-step returns r is the n-step return G, s' the state s_{t+m} after it, and the bootstrap
    weight the minibatch's discount gamma^m (1 - d) (nstep_returns)."""
    a2, _, _ = actor_action(theta_targ, sizes_pi, mid, half, obs2)
    return rew + bootstrap_weight(gamma, done, discount) * min_q_target(phi_targ, sizes_q, obs2,
                                                                         a2)


def clip_target(y, gamma):
    """y clipped to [-1 / (1 - gamma), 0] (no lower bound when gamma = 1): the range of a
    discounted return whose rewards all lie in [-1, 0] (the HER papers' clip_return).  Still a
    constant for the critic step."""
    low = -1 / (1 - gamma) if gamma < 1 else -np.inf
    return np.clip(y, low, 0.0)


def critic_loss_and_grad(phi, sizes_q, obs, act, y, forward=mlp_forward,
                         backward=mlp_backward):
    """L_Q = mean_B (Q(s, a) - y)^2 and dL_Q/dphi (dL_Q/dQ_i = 2 (Q_i - y_i) / B)."""
    q, cache = critic_value(phi, sizes_q, obs, act, forward)
    B = q.shape[0]
    loss = np.mean((q - y) ** 2)
    dq = (2 * (q - y) / B).reshape(B, 1)
    dphi, _ = backward(dq, cache)
    return loss, dphi, q


def actor_loss_and_grad(theta, phi, sizes_pi, sizes_q, mid, half, obs, forward=mlp_forward,
                        backward=mlp_backward, action_l2=0.0):
    """J = -mean_B Q(s, mu(s)) + action_l2 mean_{B, k} u^2 with phi held constant, and dJ/dtheta.

    dJ/dQ_i = -1/B; through the critic to its input, keep the action columns: dJ/da (B, k);
    a = mid + half * u gives dJ/du = half * dJ/da, and the penalty, a mean over all B k
    entries of u, adds 2 action_l2 u / (B k); then through tanh and the actor into theta.
    (The critic's own gradient, which backward also returns, is dropped: phi is constant.)
    """
    a, u, pi_cache = actor_action(theta, sizes_pi, mid, half, obs, forward)
    q, q_cache = critic_value(phi, sizes_q, obs, a, forward)
    B = q.shape[0]
    _, dxq = backward(np.full((B, 1), -1.0 / B), q_cache)
    da = dxq[:, obs.shape[1]:]
    du = half * da
    loss = -np.mean(q)
    if action_l2:
        loss += action_l2 * np.mean(u * u)
        du = du + 2 * action_l2 * u / u.size
    dtheta, _ = backward(du, pi_cache)
    return loss, dtheta


# --- n-step returns (docs/math.md section 12) --------------------------------------------------

def nstep_returns(idx, rew, done, next_row, n, gamma):
    """The n-step returns of replay rows idx (B,) int, walking each row's episode forward.

    rew, done (N,): the stored one-step rewards and done flags; next_row (N,) int: the row of
    the same env's next transition in the same episode, -1 where there is none (the episode
    ended, terminated or truncated, or its next transition is not stored yet).
    Returns (G, last, discount), each (B,):

        m        = the steps summed: n, or fewer where the episode ends first
        G        = sum_{k < m} gamma^k r_{t+k}
        last     = the row of step t+m-1, whose s' is s_{t+m} and whose d ends the target
        discount = gamma^m (1 - d_last), the weight of Q_targ(s_{t+m}, .) in the target
    """
    B = idx.shape[0]
    G = np.zeros(B)
    gamma_k = np.ones(B)              # gamma^k of the step being added; gamma^m at the end
    last = np.array(idx)              # the row of step t+k; at the end of step t+m-1
    going = np.ones(B, bool)          # rows whose sum takes step t+k
    for k in range(n):
        G[going] += gamma_k[going] * rew[last[going]]
        gamma_k[going] *= gamma
        nxt = next_row[last]
        going &= (nxt >= 0) & (k + 1 < n)
        last[going] = nxt[going]
    return G, last, gamma_k * (1 - done[last])


def nstep_batch(idx, obs, act, rew, obs2, done, next_row, n, gamma):
    """The minibatch of replay rows idx with n-step returns: (s_t, a_t, G, s_{t+m}, d_last) and
    the discount (nstep_returns), as a dict of obs, act, rew, obs2, done, discount."""
    G, last, discount = nstep_returns(idx, rew, done, next_row, n, gamma)
    return {"obs": obs[idx], "act": act[idx], "rew": G, "obs2": obs2[last], "done": done[last],
            "discount": discount}


# --- optimiser and target networks -------------------------------------------------------------

def adam(params, grad, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
         decoupled=True):
    """One Adam step (t >= 1); returns new (params, m, v) and leaves the inputs alone.

    g = grad + lambda params    (weight decay lambda, coupled: torch.optim.Adam's L2)
    m_t = beta1 m + (1 - beta1) g ; v_t = beta2 v + (1 - beta2) g^2
    m_hat = m_t / (1 - beta1^t) ; v_hat = v_t / (1 - beta2^t)
    params_t = params - lr lambda params - lr * m_hat / (sqrt(v_hat) + eps)
                                (the middle term only decoupled: torch.optim.AdamW)
    """
    g = grad if decoupled else grad + weight_decay * params
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    decayed = params - lr * weight_decay * params if decoupled else params
    return decayed - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def polyak(targ, src, rho):
    """targ <- rho * targ + (1 - rho) * src (rho weights the target)."""
    return rho * targ + (1 - rho) * src


# --- the whole update -------------------------------------------------------------------------

def critic_suffixes(n_critics):
    """How the state dicts name n critics' arrays: [""] for one (phi, phi_targ, m_q, v_q), else
    ["1", ..., "n"] (phi1, phi1_targ, m_q1, v_q1, phi2, ...)."""
    return [""] if n_critics == 1 else [str(k) for k in range(1, n_critics + 1)]


def critics_step(s, y, obs, act, sizes_q, q_lr, n_critics, adam_options):
    """Step 2 on every critic of the state dict s, in place: L_Q = sum_k mean (Q_k(s, a) - y)^2,
    so each critic's gradient is its own MSE's, and an Adam step on each (one step count t_q;
    ``adam``'s keywords adam_options).  Returns (L_Q, critic 1's q (B,))."""
    s["t_q"] += 1
    loss_q, q1 = 0.0, None
    for c in critic_suffixes(n_critics):
        loss, dphi, q = critic_loss_and_grad(s["phi" + c], sizes_q, obs, act, y)
        loss_q += loss
        q1 = q if q1 is None else q1
        s["phi" + c], s["m_q" + c], s["v_q" + c] = adam(s["phi" + c], dphi, s["m_q" + c],
                                                        s["v_q" + c], s["t_q"], q_lr,
                                                        **adam_options)
    return loss_q, q1


def ddpg_update(state, batch, sizes_pi, sizes_q, mid, half, gamma, rho, pi_lr, q_lr,
                adam_options=None, n_critics=1, action_l2=0.0, clip_return=False,
                discount=None):
    """One DDPG update on plain arrays; returns (new state dict, info dict).

    state: theta, phi, theta_targ, phi_targ, m_pi, v_pi, m_q, v_q (flat arrays), t_pi, t_q
    (ints); with n_critics > 1, phi1, phi1_targ, m_q1, v_q1, phi2, ... in place of phi,
    phi_targ, m_q, v_q (critic_suffixes).
    batch: obs (B, o), act (B, a), rew (B,), obs2 (B, o), done (B,)
    adam_options: ``adam``'s beta1, beta2, eps, weight_decay, decoupled (None: its defaults)
    action_l2: the actor's action penalty (actor_loss_and_grad); clip_return: clip the target
    (clip_target).
    discount: (B,) an n-step minibatch's bootstrap weights (td_target), or None: one-step
    """
    adam_options = adam_options or {}
    s = dict(state)
    obs, act, rew, obs2, done = batch
    names = critic_suffixes(n_critics)
    # 1. target
    y = td_target(s["theta_targ"], [s[f"phi{c}_targ"] for c in names], sizes_pi, sizes_q, mid,
                  half, gamma, rew, obs2, done, discount)
    if clip_return:
        y = clip_target(y, gamma)
    # 2. critic step (each critic)
    loss_q, q = critics_step(s, y, obs, act, sizes_q, q_lr, n_critics, adam_options)
    # 3. actor step through the updated critic 1
    loss_pi, dtheta = actor_loss_and_grad(s["theta"], s["phi" + names[0]], sizes_pi, sizes_q,
                                          mid, half, obs, action_l2=action_l2)
    s["t_pi"] += 1
    s["theta"], s["m_pi"], s["v_pi"] = adam(s["theta"], dtheta, s["m_pi"], s["v_pi"], s["t_pi"],
                                            pi_lr, **adam_options)
    # 4. polyak
    for k in ["theta", *("phi" + c for c in names)]:
        s[k + "_targ"] = polyak(s[k + "_targ"], s[k], rho)
    info = {"loss_q": loss_q, "loss_pi": loss_pi, "q_mean": np.mean(q), "q_std": np.std(q)}
    return s, info


def td3_target(theta_targ, phi_targ, sizes_pi, sizes_q, mid, half, gamma, rew, obs2, done, eps,
               target_noise, noise_clip, discount=None):
    """TD3's target with policy smoothing and the clipped minimum over the critics.

    eps (B, k) are standard normal draws; the smoothing noise is
    clip(target_noise * half * eps, -noise_clip * half, +noise_clip * half) and the noisy action is
    clipped to [low, high] = [mid - half, mid + half].  Then
    y = r + gamma (1 - d) min_k Q_k_targ(s', a2), phi_targ as min_q_target takes it ([phi1_targ,
    phi2_targ]: TD3's double-Q minimum) (n-step: as td_target's).
    """
    a2, _, _ = actor_action(theta_targ, sizes_pi, mid, half, obs2)
    noise = np.clip(target_noise * half * eps, -noise_clip * half, noise_clip * half)
    a2 = np.clip(a2 + noise, mid - half, mid + half)
    return rew + bootstrap_weight(gamma, done, discount) * min_q_target(phi_targ, sizes_q, obs2,
                                                                         a2)


def td3_update(state, batch, eps, sizes_pi, sizes_q, mid, half, gamma, rho, pi_lr, q_lr,
               target_noise=0.2, noise_clip=0.5, policy_delay=2, adam_options=None, n_critics=2,
               action_l2=0.0, clip_return=False, discount=None):
    """One TD3 update on plain arrays; returns (new state dict, info dict).

    state: as ddpg_update's for n_critics critics (two: phi1, phi2, phi1_targ, phi2_targ, m_q1,
    v_q1, m_q2, v_q2), plus n_updates (int).  eps (B, k): the smoothing draws.  The critic loss
    is the sum of the critics' MSEs, so each critic's gradient is its own MSE's.
    adam_options, action_l2, clip_return, discount: as ddpg_update's.
    """
    adam_options = adam_options or {}
    s = dict(state)
    obs, act, rew, obs2, done = batch
    names = critic_suffixes(n_critics)
    y = td3_target(s["theta_targ"], [s[f"phi{c}_targ"] for c in names], sizes_pi, sizes_q, mid,
                   half, gamma, rew, obs2, done, eps, target_noise, noise_clip, discount)
    if clip_return:
        y = clip_target(y, gamma)
    loss_q, q1 = critics_step(s, y, obs, act, sizes_q, q_lr, n_critics, adam_options)
    s["n_updates"] += 1
    loss_pi = np.nan
    if s["n_updates"] % policy_delay == 0:
        loss_pi, dtheta = actor_loss_and_grad(s["theta"], s["phi" + names[0]], sizes_pi, sizes_q,
                                              mid, half, obs, action_l2=action_l2)
        s["t_pi"] += 1
        s["theta"], s["m_pi"], s["v_pi"] = adam(s["theta"], dtheta, s["m_pi"], s["v_pi"],
                                                s["t_pi"], pi_lr, **adam_options)
        for k in ["theta", *("phi" + c for c in names)]:
            s[k + "_targ"] = polyak(s[k + "_targ"], s[k], rho)
    info = {"loss_q": loss_q, "loss_pi": loss_pi, "q_mean": np.mean(q1), "q_std": np.std(q1)}
    return s, info
