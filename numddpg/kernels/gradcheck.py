"""Gradient checks: the Numba kernels' analytic gradients against centred finite differences.

Everything here runs in float64.  The *loss values* come from numddpg.kernels.reference (plain
NumPy, written to be read); the *analytic gradients* come from the same file's chain rule
(``reference.critic_loss_and_grad``, ``reference.actor_loss_and_grad``) run around the jitted
forward and backward passes of numddpg.kernels.nn (``mlp_forward``/``mlp_backward``, through
``kernel_mlp_forward``/``kernel_mlp_backward``).  Agreement means the hand-written backward
passes are the derivative of the math in docs/math.md; the tests hold the fused update's
gradients equal to these.

Two scalar losses of one DDPG update on a minibatch (s, a, r, s', d) of B rows:

    critic   L_Q(phi)   = mean_B (Q_phi(s, a) - y)^2,
             y = r + gamma (1 - d) min_k Q_k_targ(s', mu_targ(s'))   (clipped with clip_return)
             y is computed once from the target networks and then held constant.  With n
             critics the loss is the sum of n such terms, one per critic, so each critic's
             gradient is its own term's: one objective per critic.
    actor    J(theta)   = -mean_B Q_phi(s, mu_theta(s)) + action_l2 mean_{B, k} u^2,
             u = tanh(MLP_theta(s)), phi held constant.

Checks (CS231n's gradient_check.py, JAX's check_grads):

    numeric_grad        dL/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h, one coordinate at a time
    directional_check   <grad, t> vs (f(x + eps t) - f(x - eps t)) / 2 eps for a random unit t:
                        two forward passes whatever the length of x
    rel_error           max|a - b| / max(1e-8, max(|a| + |b|))

ReLU has a kink at 0: a finite difference that steps across it measures the wrong slope.
``kink_margin`` reports how close the nearest hidden pre-activation is to 0 so a check can tell
a kink from a bug; with h = 1e-6 a parameter step moves a pre-activation by roughly 1e-6, so a
margin above ~1e-4 rules kinks out.

The objectives take an agent (anything with the networks' flat parameters, sizes, bounds,
gamma, action_l2 and clip_return: numddpg.engine.agents.DDPGAgent); the command line,
``numddpg gradcheck``, is numddpg.tools.gradcheck.
"""
from typing import Callable, NamedTuple

import numpy as np

from . import reference as ref
from .nn import acts_size, layer_slices, mlp_backward, mlp_forward

KINK_MARGIN = 1e-4   # pre-activations closer than this to 0 may spoil a finite difference


# ---------------------------------------------------------------------------------------------
# Generic checks on a scalar function f of a flat float64 vector x
# ---------------------------------------------------------------------------------------------

def rel_error(a, b):
    """max|a - b| / max(1e-8, max(|a| + |b|)) over all elements (CS231n's relative error).

    The denominator is the largest |a_i| + |b_i|, so the error is relative to the tensor's
    scale, not to each element's (an element that is 0 in both is no division by zero).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def numeric_grad(f, x, h=1e-5, indices=None):
    """Centred finite differences of a scalar f at x (flat float64 array).

        g_i = (f(x + h e_i) - f(x - h e_i)) / (2 h)       error O(h^2) + O(eps_mach |f| / h)

    ``x`` is perturbed in place, one coordinate at a time, and always restored (even if f
    raises).  ``indices`` limits the coordinates (the others are left 0 in the result).
    """
    if x.dtype != np.float64 or x.ndim != 1:
        raise ValueError(f"x must be a flat float64 array, got {x.dtype} of shape {x.shape}")
    grad = np.zeros_like(x)
    for i in (range(x.shape[0]) if indices is None else indices):
        old = x[i]
        try:
            x[i] = old + h
            f_plus = f(x)
            x[i] = old - h
            f_minus = f(x)
        finally:
            x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def directional_check(f, grad, x, rng, eps=1e-6):
    """Relative error between <grad, t> and (f(x + eps t) - f(x - eps t)) / (2 eps).

    t is a random unit direction drawn from ``rng`` (a numpy Generator).  ``x`` is not modified.
    """
    t = rng.standard_normal(x.shape[0])
    t /= np.linalg.norm(t)
    analytic = float(np.dot(grad, t))
    numeric = (f(x + eps * t) - f(x - eps * t)) / (2 * eps)
    return rel_error(analytic, numeric)


# ---------------------------------------------------------------------------------------------
# The kernels' forward and backward passes, called one at a time
# ---------------------------------------------------------------------------------------------

def kernel_forward(params, sizes, tanh_out, x):
    """y = MLP(x) with the Numba kernel.  x (B, n_0) -> (y (B, n_L), acts), where ``acts`` is the
    activation workspace kernel_backward needs (h_1..h_L back to back)."""
    sizes_arr = np.asarray(sizes, np.int64)
    acts = np.empty(acts_size(sizes, x.shape[0]), params.dtype)
    y = mlp_forward(params, sizes_arr, tanh_out, x, acts)
    return y.copy(), acts


def kernel_backward(params, sizes, tanh_out, x, acts, dout, want_grad=True, dx_col0=None):
    """The Numba backward kernel after kernel_forward on the same x.

    dout (B, n_L) = dL/dy.  Returns (grad, dx): grad = dL/dparams (P,) (an empty array when
    ``want_grad`` is False: the kernel then skips it, as in the actor step) and
    dx = dL/dx[:, c:] (B, n_0 - c) for c = dx_col0 (None when dx_col0 is None).
    """
    sizes = tuple(int(s) for s in sizes)
    B = x.shape[0]
    delta_buf = np.empty(B * max(sizes), params.dtype)
    dh_buf = np.empty_like(delta_buf)
    grad = np.empty(params.shape[0] if want_grad else 0, params.dtype)
    c = 0 if dx_col0 is None else dx_col0
    dx = np.empty((0, 0) if dx_col0 is None else (B, sizes[0] - c), params.dtype)
    mlp_backward(params, np.asarray(sizes, np.int64), tanh_out, x, acts, dout, grad, dx, c,
                 delta_buf, dh_buf)
    return grad, (None if dx_col0 is None else dx)


def kernel_mlp_forward(params, sizes, output, x):
    """reference.mlp_forward's contract on the kernel: (h_L (B, n_L), cache for the backward)."""
    tanh_out = output == "tanh"
    out, acts = kernel_forward(params, sizes, tanh_out, x)
    return out, (params, sizes, tanh_out, x, acts)


def kernel_mlp_backward(dout, cache):
    """reference.mlp_backward's contract on the kernel: (grad (P,), dx (B, n_0))."""
    params, sizes, tanh_out, x, acts = cache
    return kernel_backward(params, sizes, tanh_out, x, acts, dout, dx_col0=0)


class Objective(NamedTuple):
    """A scalar loss of one network's flat parameters, with its analytic gradient."""
    loss: str                                   # "L_Q" (critic loss) or "J" (actor objective)
    net: str                                    # the network x belongs to: "critic" or "actor"
    f: Callable[[np.ndarray], float]            # x (P,) -> loss, from numddpg.kernels.reference
    grad: Callable[[np.ndarray], np.ndarray]    # x (P,) -> dloss/dx (P,), from the kernels
    x0: np.ndarray                              # the point to check: a copy of the params
    sizes: tuple                                # layer sizes of that network
    margin: Callable[[np.ndarray], float]       # x -> distance of the nearest ReLU input to 0


def _as_batch(agent, batch):
    if agent.dtype != np.float64:
        raise ValueError(f"gradient checks need a float64 agent (finite differences in float32 "
                         f"lose ~8 digits), got dtype={agent.dtype}; build the agent with "
                         f"dtype=np.float64")
    return agent.check_batch(*batch)


def kink_margin(params, sizes, output, x):
    """min |z| over the hidden (ReLU) pre-activations z of the reference forward pass
    (inf when there are none)."""
    _, cache = ref.mlp_forward(params, sizes, output, x)
    zs = [np.abs(z).min() for (_, kind, z) in cache if kind == "relu"]
    return float(min(zs)) if zs else float("inf")


def critic_objective(agent, batch, k=0, discount=None):
    """Critic k's term of L_Q, mean_B (Q_phi_k(s, a) - y)^2 with y held constant, and its
    gradient dL_Q/dphi_k (k = 0: critic 1, the only one of a DDPG agent by default).

    batch = (obs (B, o), act (B, a), rew (B,), obs2 (B, o), done (B,)); discount (B,): an
    n-step minibatch's bootstrap weights gamma^m (1 - d) (None: one-step).  y is computed first
    from the agent's target networks (reference.td_target: the minimum over every critic's
    target); neither the agent nor the batch is modified by the returned functions.
    """
    obs, act, rew, obs2, done = _as_batch(agent, batch)
    discount = None if discount is None else agent.check_discount(discount, obs.shape[0])
    sizes_pi, sizes_q = agent.actor.sizes, agent.critic.sizes
    y = ref.td_target(agent.actor_targ.params, [c.params for c in agent.critics_targ], sizes_pi,
                      sizes_q, agent.mid, agent.half, agent.gamma, rew, obs2, done,
                      discount)                                                 # (B,)
    if agent.clip_return:
        y = ref.clip_target(y, agent.gamma)
    xq = np.concatenate([obs, act], axis=1)                                     # (B, o + a)

    def f(phi):
        q, _ = ref.critic_value(phi, sizes_q, obs, act)                         # (B,)
        return float(np.mean((q - y) ** 2))

    def grad(phi):
        _, dphi, _ = ref.critic_loss_and_grad(phi, sizes_q, obs, act, y,
                                              kernel_mlp_forward, kernel_mlp_backward)
        return dphi

    def margin(phi):
        return kink_margin(phi, sizes_q, "identity", xq)

    return Objective("L_Q", "critic" if k == 0 else f"critic{k + 1}", f, grad,
                     agent.critics[k].params.copy(), sizes_q, margin)


def actor_objective(agent, batch):
    """J(theta) = -mean_B Q_phi(s, mu_theta(s)) + action_l2 mean_{B, k} u^2 with phi held
    constant, and dJ/dtheta.

    The gradient is reference.actor_loss_and_grad's chain (dJ/dQ_i = -1/B, the critic's
    backward pass to dJ/da, dJ/du = half * dJ/da + 2 action_l2 u / (B k), the actor's backward
    pass through tanh) around the kernels' passes.
    """
    obs, _, _, _, _ = _as_batch(agent, batch)
    sizes_pi, sizes_q = agent.actor.sizes, agent.critic.sizes
    phi = agent.critic.params.copy()                                            # constant
    mid, half, action_l2 = agent.mid, agent.half, agent.action_l2

    def f(theta):
        a, u, _ = ref.actor_action(theta, sizes_pi, mid, half, obs)
        q, _ = ref.critic_value(phi, sizes_q, obs, a)
        return float(-np.mean(q) + action_l2 * np.mean(u * u))

    def grad(theta):
        _, dtheta = ref.actor_loss_and_grad(theta, phi, sizes_pi, sizes_q, mid, half, obs,
                                            kernel_mlp_forward, kernel_mlp_backward, action_l2)
        return dtheta

    def margin(theta):
        a, _, _ = ref.actor_action(theta, sizes_pi, mid, half, obs)
        return min(kink_margin(theta, sizes_pi, "tanh", obs),
                   kink_margin(phi, sizes_q, "identity", np.concatenate([obs, a], axis=1)))

    return Objective("J", "actor", f, grad, agent.actor.params.copy(), sizes_pi, margin)


def tensor_names(sizes):
    """[(name, slice, shape)] for W_0, b_0, W_1, ... of the flat layout."""
    out = []
    for l, (w, shape, b) in enumerate(layer_slices(sizes)):
        out.append((f"W_{l}", w, shape))
        out.append((f"b_{l}", b, (shape[1],)))
    return out


def check_objective(obj, h=1e-6, tol=1e-6, rng=None, eps_dir=1e-5):
    """Rows {loss, tensor, shape, max_abs, rel_error, bound, ok}: one per tensor (coordinate
    differences with step h), then one for the directional check of the whole flat vector.

    The directional check compares one scalar <grad, t>, which can be small when t is nearly
    orthogonal to grad, so its rounding error (~eps_mach |f| / eps) matters more: its step
    eps_dir = 1e-5 sits near the optimum cbrt(eps_mach) ~ 6e-6 of centred differences (with
    1e-6, rounding alone reached ~1e-6 relative error on a few seeds with tiny actor gradients).
    """
    x = obj.x0.copy()
    analytic = obj.grad(x)
    numeric = numeric_grad(obj.f, x, h)
    rows = []
    for name, sl, shape in tensor_names(obj.sizes):
        err = rel_error(analytic[sl], numeric[sl])
        rows.append({"loss": obj.loss, "tensor": f"{obj.net} {name}", "shape": shape,
                     "max_abs": float(np.max(np.abs(analytic[sl]))), "rel_error": err,
                     "bound": tol, "ok": bool(err <= tol)})
    rng = np.random.default_rng(0) if rng is None else rng
    err = directional_check(obj.f, analytic, x, rng, eps=eps_dir)
    rows.append({"loss": obj.loss, "tensor": f"{obj.net} (all, directional)",
                 "shape": (x.shape[0],), "max_abs": float(np.max(np.abs(analytic))),
                 "rel_error": err, "bound": tol, "ok": bool(err <= tol)})
    return rows
