"""The same DDPG update as numddpg's, in JAX, jitted whole as a burst of K updates: a bench rival.

This is how the JAX libraries (SBX, for one) run DDPG/TD3 updates: one ``jax.jit`` call runs
``jax.lax.scan`` over K updates, and each step of the scan samples its own minibatch from replay
arrays that already live on the device.  Nothing goes back to Python between the K updates.
Only used by bench/update_speed.py (as ``JaxDDPG(o, a, hidden).burst(replay, B, K)``) and by
this file's self-check; needs jax and optax.

One update on a minibatch (s, a, r, s2, d) of B rows, float32, shapes (B, o) (B, a) (B,) (B, o)
(B,), drawn uniformly with replacement from the first ``size`` replay rows:

    1. target   y = r + gamma (1 - d) Q_targ(s2, mu_targ(s2))       stop_gradient: a constant
    2. critic   L_Q = mean_B (Q(s, a) - y)^2      (plain mean, no 1/2)     one Adam step on phi
    3. actor    J = -mean_B Q(s, mu(s)), phi = the critic AFTER step 2, held constant;
                                                                           one Adam step on theta
    4. polyak   targ <- polyak targ + (1 - polyak) online, for theta and phi   (polyak = 0.995)

Networks (params: a list of (W, b) per layer, W (n_in, n_out), b (n_out,), z = h @ W + b):
    mu(s)   = mid + half * tanh(MLP_theta(s))       mid = (high + low)/2, half = (high - low)/2
    Q(s, a) = MLP_phi(concat(s, a))[:, 0]           ReLU hidden layers, identity output
Init: every W and b ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)) (torch nn.Linear); targets are copies.
Adam: torch.optim.Adam's formula (optax.adam: beta1 0.9, beta2 0.999, eps 1e-8 outside the
sqrt), lr 1e-3 for both.  gamma 0.99.  This is numddpg/reference.py's ``ddpg_update``; the
self-check (``python bench/jax_ddpg.py``) holds the two equal.

Threads.  XLA's CPU backend runs a jitted function on its own intra-op thread pool, sized when
JAX creates its CPU client (the first computation), from the CPUs the creating thread may run
on.  The often-quoted

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

does NOT make it single-threaded in jax/jaxlib 0.10.2: the flag is accepted but the matmuls of a
jitted function still run on two pool threads (checked with per-thread CPU time on 2 cores), and
``intra_op_parallelism_threads=1`` is not an XLA flag at all -- a token without ``--`` after the
first is silently ignored, while ``--intra_op_parallelism_threads=1`` aborts the process with
"Unknown flag in XLA_FLAGS".  What works (JAX's maintainers' advice, jax-ml/jax#1539) is CPU
affinity at client creation:

    * ``taskset -c 0 python ...``  -- the whole process on one core, or
    * ``limit_xla_threads(1)`` (below), before any JAX computation: it pins the calling thread
      to one CPU, creates the CPU client (whose pool is then sized for, and its threads pinned
      to, that CPU) and restores the thread's own affinity, so numpy/Numba/torch in the same
      process keep every core.  Checked: afterwards every thread that burns CPU time during a
      burst is pinned to CPU 0 (without it: two threads, each on CPUs 0-1).

``threads_env(n)`` returns the environment variables to set before importing jax
(JAX_PLATFORMS=cpu, and for n == 1 the harmless eigen flag); it does not limit threads alone.
JAX computes in float32 unless jax_enable_x64 is switched on (the self-check does, in a
subprocess, to compare with the float64 reference at ~1e-15).
"""
import functools
import os
import sys
from typing import NamedTuple

os.environ.setdefault("JAX_PLATFORMS", "cpu")      # before jax is imported: CPU only

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402


# --- threads -----------------------------------------------------------------------------------

def threads_env(n):
    """Environment variables for a process that will import jax and run it on the CPU.

    Set them before ``import jax`` (e.g. ``subprocess.run(..., env={**os.environ,
    **threads_env(1)})``).  For n == 1 this adds --xla_cpu_multi_thread_eigen=false, which jax
    0.10.2 accepts but which does not stop the intra-op pool from using several threads: limit
    the CPUs too, with ``taskset -c 0`` or ``limit_xla_threads(1)`` in the process.
    """
    env = {"JAX_PLATFORMS": "cpu"}
    flags = os.environ.get("XLA_FLAGS", "")
    if n == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        flags = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    if flags:
        env["XLA_FLAGS"] = flags
    return env


def limit_xla_threads(n, cpus=None):
    """Make XLA's CPU thread pool n threads wide, pinned to n CPUs; call before any JAX work.

    Pins the calling thread to ``cpus`` (default: the first n it may use), creates JAX's CPU
    client -- its pool is sized from, and its threads inherit, that affinity -- then restores
    the calling thread's affinity (the main thread only dispatches; the pool computes).
    Returns the CPU set used.  Raises RuntimeError when JAX's backend already exists (its pool
    can no longer be resized in this process).
    """
    from jax._src import xla_bridge
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("limit_xla_threads must run before JAX's first computation: "
                           "the CPU client (and its thread pool) already exists")
    old = os.sched_getaffinity(0)
    cpus = set(cpus) if cpus is not None else set(sorted(old)[:n])
    os.sched_setaffinity(0, cpus)              # pid 0: this thread only (Linux)
    try:
        jax.devices("cpu")                     # creates the client and its intra-op pool now
    finally:
        os.sched_setaffinity(0, old)
    return cpus


# --- networks ----------------------------------------------------------------------------------

def mlp_init(key, sizes, dtype):
    """[(W_l, b_l)] for sizes [n_0, ..., n_L]; W_l (n_l, n_{l+1}), b_l (n_{l+1},), all
    ~ U(-1/sqrt(n_l), 1/sqrt(n_l)) (torch nn.Linear's default)."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / np.sqrt(n_in)
        W = jax.random.uniform(kw, (n_in, n_out), dtype, -bound, bound)
        b = jax.random.uniform(kb, (n_out,), dtype, -bound, bound)
        params.append((W, b))
    return params


def mlp_apply(params, x):
    """h_0 = x; h_{l+1} = relu(h_l @ W_l + b_l) for hidden layers; returns the last affine
    output z_{L-1} = h_{L-1} @ W + b, (B, n_L)."""
    for W, b in params[:-1]:
        x = jax.nn.relu(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def actor(theta, mid, half, s):
    """mu(s) = mid + half * tanh(MLP_theta(s)): (B, o) -> (B, a), inside [low, high]."""
    return mid + half * jnp.tanh(mlp_apply(theta, s))


def critic(phi, s, a):
    """Q(s, a) = MLP_phi(concat(s, a))[:, 0]: (B, o), (B, a) -> (B,)."""
    return mlp_apply(phi, jnp.concatenate([s, a], axis=1))[:, 0]


def to_flat(params):
    """numddpg's flat layout: W_0 (row-major), b_0, W_1, b_1, ... as one numpy vector."""
    return np.concatenate([np.concatenate([np.asarray(W).ravel(), np.asarray(b)])
                           for W, b in params])


# --- the update --------------------------------------------------------------------------------

class State(NamedTuple):
    """Everything an update reads and writes, all JAX arrays (a pytree)."""
    theta: list          # actor params [(W, b)]
    phi: list            # critic params
    theta_targ: list
    phi_targ: list
    opt_pi: tuple        # optax Adam state of theta (count, mu, nu)
    opt_q: tuple         # optax Adam state of phi
    key: jax.Array       # PRNG key for the minibatch draws


def make_update(mid, half, gamma, polyak, opt_pi, opt_q):
    """update(state, batch) -> (state, (loss_q, loss_pi)): one DDPG update on a fixed batch."""

    def update(state, batch):
        s, a, r, s2, d = batch                 # (B, o) (B, a) (B,) (B, o) (B,)
        # 1. target, a constant for the critic step
        q_targ = critic(state.phi_targ, s2, actor(state.theta_targ, mid, half, s2))
        y = jax.lax.stop_gradient(r + gamma * (1 - d) * q_targ)          # (B,)

        # 2. critic: L_Q = mean (Q(s, a) - y)^2, one Adam step
        def loss_q_fn(phi):
            return jnp.mean((critic(phi, s, a) - y) ** 2)
        loss_q, g_phi = jax.value_and_grad(loss_q_fn)(state.phi)
        step, opt_q_state = opt_q.update(g_phi, state.opt_q, state.phi)
        phi = optax.apply_updates(state.phi, step)

        # 3. actor: J = -mean Q(s, mu(s)) through the updated critic, gradient in theta only
        def loss_pi_fn(theta):
            return -jnp.mean(critic(phi, s, actor(theta, mid, half, s)))
        loss_pi, g_theta = jax.value_and_grad(loss_pi_fn)(state.theta)
        step, opt_pi_state = opt_pi.update(g_theta, state.opt_pi, state.theta)
        theta = optax.apply_updates(state.theta, step)

        # 4. polyak averaging of both targets
        def avg(targ, online):
            return jax.tree.map(lambda t, p: polyak * t + (1 - polyak) * p, targ, online)

        new = State(theta, phi, avg(state.theta_targ, theta), avg(state.phi_targ, phi),
                    opt_pi_state, opt_q_state, state.key)
        return new, (loss_q, loss_pi)

    return update


def make_burst(update):
    """burst(state, data, size, batch_size, K) -> (state, {loss_q (K,), loss_pi (K,)}).

    data = (obs, act, rew, obs2, done) device arrays of N rows; size (int scalar, traced, so a
    growing buffer does not recompile) bounds the rows drawn.  batch_size and K are static.
    Each scan step splits the key, draws idx ~ U{0..size-1}^B with replacement, gathers the
    minibatch and runs ``update``.
    """

    def burst(state, data, size, batch_size, K):
        def step(state, _):
            key, sub = jax.random.split(state.key)
            idx = jax.random.randint(sub, (batch_size,), 0, size)          # (B,) int32
            batch = tuple(x[idx] for x in data)
            state, losses = update(state._replace(key=key), batch)
            return state, losses

        state, (loss_q, loss_pi) = jax.lax.scan(step, state, None, length=K)
        return state, {"loss_q": loss_q, "loss_pi": loss_pi}

    return burst


class JaxDDPG:
    """DDPG on JAX, state kept on the device between calls.

    ``burst(replay, batch_size, K)`` runs K updates in one jitted call (compiled once per
    (batch_size, K, replay shapes)) and blocks until they are done; ``update(batch)`` runs one
    update on a given minibatch (the self-check's hook).  ``state`` holds theta, phi, their
    targets, both Adam states and the sampling key.
    """

    def __init__(self, obs_dim, act_dim, hidden, seed=0, gamma=0.99, polyak=0.995, lr=1e-3,
                 act_low=-1.0, act_high=1.0, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.sizes_pi = [obs_dim, *hidden, act_dim]
        self.sizes_q = [obs_dim + act_dim, *hidden, 1]
        low = np.broadcast_to(np.asarray(act_low, np.float64), (act_dim,))
        high = np.broadcast_to(np.asarray(act_high, np.float64), (act_dim,))
        self.mid = jnp.asarray((high + low) / 2, self.dtype)              # (a,)
        self.half = jnp.asarray((high - low) / 2, self.dtype)             # (a,)
        self.gamma, self.polyak = gamma, polyak
        opt_pi, opt_q = optax.adam(lr), optax.adam(lr)

        key = jax.random.key(seed)
        key, k_pi, k_q = jax.random.split(key, 3)
        theta = mlp_init(k_pi, self.sizes_pi, self.dtype)
        phi = mlp_init(k_q, self.sizes_q, self.dtype)
        copy = functools.partial(jax.tree.map, jnp.copy)   # own buffers: all of state is donated
        self.state = State(theta, phi, copy(theta), copy(phi), opt_pi.init(theta),
                           opt_q.init(phi), key)
        if jax.tree.leaves(self.state.theta)[0].dtype != self.dtype:
            raise RuntimeError(f"JAX made {jax.tree.leaves(theta)[0].dtype} params, wanted "
                               f"{self.dtype} (float64 needs jax_enable_x64)")

        update = make_update(self.mid, self.half, gamma, polyak, opt_pi, opt_q)
        self._update = jax.jit(update, donate_argnums=0)
        self._burst = jax.jit(make_burst(update), static_argnames=("batch_size", "K"),
                              donate_argnums=0)
        self._replay = None                    # (replay object, its device arrays)

    def device_replay(self, replay):
        """The replay's five arrays on the device, uploaded once per replay object (keyed on
        id(replay); the object is kept so its id stays unique).  A snapshot: rows written
        into the numpy arrays later are not seen -- call ``forget_replay()`` to re-upload."""
        if self._replay is None or self._replay[0] is not replay:
            data = tuple(jax.device_put(np.asarray(x, self.dtype)) for x in
                         (replay.obs, replay.act, replay.rew, replay.obs2, replay.done))
            self._replay = (replay, data)
        return self._replay[1]

    def forget_replay(self):
        self._replay = None

    def burst(self, replay, batch_size, K):
        """K updates on minibatches drawn from replay's first ``replay.size`` rows; blocks until
        done and returns {loss_q (K,), loss_pi (K,)} as JAX arrays."""
        data = self.device_replay(replay)
        self.state, losses = self._burst(self.state, data, np.int32(replay.size),
                                         batch_size=batch_size, K=K)
        return jax.block_until_ready(losses)

    def update(self, obs, act, rew, obs2, done):
        """One update on this minibatch (numpy or JAX arrays); returns (loss_q, loss_pi)."""
        batch = tuple(jnp.asarray(x, self.dtype) for x in (obs, act, rew, obs2, done))
        self.state, losses = self._update(self.state, batch)
        return jax.block_until_ready(losses)

    def flat_params(self):
        """{theta, phi, theta_targ, phi_targ} in numddpg's flat layout (numpy)."""
        return {k: to_flat(getattr(self.state, k))
                for k in ("theta", "phi", "theta_targ", "phi_targ")}


# --- self-check --------------------------------------------------------------------------------

def _Replay(obs_dim, act_dim, n):
    """A random filled replay buffer with the attributes burst reads (10 % terminal)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from numddpg.kernels.threads import random_replay
    return random_replay(obs_dim, act_dim, n, done_rate=0.1)


def _batches(replay, B, n, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        idx = rng.integers(0, replay.size, B)
        yield tuple(x[idx] for x in (replay.obs, replay.act, replay.rew, replay.obs2, replay.done))


def _check_vs_reference(dtype, n_updates=3, with_agent=False):
    """Run JaxDDPG.update and numddpg.kernels.reference.ddpg_update (float64) -- and, with_agent, a
    float32 numddpg.DDPGAgent -- on the same minibatches from the same initial parameters;
    returns [(after update t, {name: max |diff|})]."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from numddpg.kernels import reference as ref

    o, a, hidden, B = 3, 1, (64, 64), 64
    agent = JaxDDPG(o, a, hidden, seed=0, dtype=dtype)
    flat = agent.flat_params()
    f64 = {k: v.astype(np.float64) for k, v in flat.items()}
    st = dict(f64, m_pi=np.zeros_like(f64["theta"]), v_pi=np.zeros_like(f64["theta"]),
              m_q=np.zeros_like(f64["phi"]), v_q=np.zeros_like(f64["phi"]), t_pi=0, t_q=0)
    mid, half = np.zeros(a), np.ones(a)
    nd = None
    if with_agent:
        try:
            from numddpg import DDPGAgent
        except Exception as e:                 # numddpg's kernels are being edited elsewhere
            print(f"  (numddpg.DDPGAgent unavailable, {type(e).__name__}: {e}; "
                  "comparing with the reference only)")
            with_agent = False
    if with_agent:
        nd = DDPGAgent(o, a, -1.0, 1.0, hidden_sizes=hidden, seed=0, dtype=np.float32)
        for net, k in ((nd.actor, "theta"), (nd.critic, "phi"), (nd.actor_targ, "theta"),
                       (nd.critic_targ, "phi")):
            net.load_params(flat[k])
    out = []
    theta0, phi0 = flat["theta"], flat["phi"]
    replay = _Replay(o, a, 1000)
    for t, batch in enumerate(_batches(replay, B, n_updates), 1):
        agent.update(*batch)
        st, _ = ref.ddpg_update(st, tuple(x.astype(np.float64) for x in batch), agent.sizes_pi,
                                agent.sizes_q, mid, half, 0.99, 0.995, 1e-3, 1e-3)
        got = agent.flat_params()
        diffs = {"ref " + k: float(np.max(np.abs(got[k] - st[k]))) for k in got}
        if t == 1:                             # the step itself, so the diffs mean something
            print(f"  ({np.dtype(dtype).name}: update 1 moved theta by up to "
                  f"{np.max(np.abs(got['theta'] - theta0)):.1e}, phi by up to "
                  f"{np.max(np.abs(got['phi'] - phi0)):.1e})")
        if nd is not None:
            nd.update(*batch)
            for k, net in (("theta", nd.actor), ("phi", nd.critic), ("theta_targ", nd.actor_targ),
                           ("phi_targ", nd.critic_targ)):
                diffs["agent " + k] = float(np.max(np.abs(got[k] - net.params)))
        out.append((t, diffs))
    return out


def _check_burst_matches_updates():
    """burst(K=3) == three update() calls on the minibatches the burst's own key draws."""
    o, a, hidden, B, K = 3, 1, (64, 64), 64, 3
    replay = _Replay(o, a, 1000)
    x, y = JaxDDPG(o, a, hidden, seed=3), JaxDDPG(o, a, hidden, seed=3)
    size = 700                                 # draw from the first 700 rows only
    replay.size = size
    x.burst(replay, B, K)
    key = y.state.key
    for _ in range(K):
        key, sub = jax.random.split(key)
        idx = np.asarray(jax.random.randint(sub, (B,), 0, size))
        assert idx.max() < size
        y.update(*(v[idx] for v in (replay.obs, replay.act, replay.rew, replay.obs2, replay.done)))
    fx, fy = x.flat_params(), y.flat_params()
    return max(float(np.max(np.abs(fx[k] - fy[k]))) for k in fx)


def _main():
    import subprocess
    import time
    if "--x64" in sys.argv:                    # the subprocess: float64 vs the float64 reference
        jax.config.update("jax_enable_x64", True)
        worst = 0.0
        for t, d in _check_vs_reference(np.float64):
            worst = max(worst, *d.values())
            print(f"  float64, after {t} update(s): max|diff| "
                  + "  ".join(f"{k} {v:.1e}" for k, v in d.items()))
        print(f"WORST {worst!r}")
        return

    print(f"jax {jax.__version__} on {jax.devices()}, XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}")
    replay = _Replay(3, 1, 1000)
    agent = JaxDDPG(3, 1, (64, 64), seed=0)
    t0 = time.perf_counter()
    losses = agent.burst(replay, 64, 5)
    first = time.perf_counter() - t0
    print(f"burst K=5, B=64, (3, 1, (64, 64)), first call {first:.2f} s (compile):")
    print("  loss_q ", np.asarray(losses["loss_q"]))
    print("  loss_pi", np.asarray(losses["loss_pi"]))
    losses = agent.burst(replay, 64, 5)
    print("  again  ", np.asarray(losses["loss_q"]), "(no recompile, state donated)")
    assert agent.state.theta[0][0].dtype == jnp.float32

    print(f"burst of 3 vs 3 update() calls on the same draws: max|diff| "
          f"{_check_burst_matches_updates():.1e}")

    print("same minibatches, same initial params, vs numddpg (reference = float64 NumPy twin, "
          "agent = float32 DDPGAgent):")
    worst32 = 0.0
    for t, d in _check_vs_reference(np.float32, with_agent=True):
        worst32 = max(worst32, *d.values())
        print(f"  float32, after {t} update(s): max|diff| "
              + "  ".join(f"{k} {v:.1e}" for k, v in d.items()))
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--x64"], capture_output=True,
                       text=True)
    lines = r.stdout.splitlines()
    if r.returncode or not lines or not lines[-1].startswith("WORST "):
        print(r.stdout, r.stderr)
        raise SystemExit("float64 check failed to run")
    print("\n".join(lines[:-1]))
    worst64 = float(lines[-1].split()[1])
    ok = worst32 < 1e-4 and worst64 < 1e-10
    print(f"{'OK' if ok else 'FAIL'}: float32 worst {worst32:.1e} (tol 1e-4), "
          f"float64 worst {worst64:.1e} (tol 1e-10)")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    _main()
