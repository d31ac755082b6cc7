"""DDPGAgent and TD3Agent: the networks, their targets, Adam states and workspaces of one update.

The update itself is numddpg.kernels.update: named jitted steps (target_q, critic_loss_and_grad,
actor_loss_and_grad, adam) on bundles of arrays (docs/math.md, "The DDPG update").  An agent
owns the arrays and hands them to those kernels as bundles:

    actor, the n critics                update.Net(params, targ, grad (C, P), m, v, sizes); the
                                        critics as critic 1, critic 2 and a tuple of the rest,
                                        None where there are none (update.kernel_parts; n =
                                        n_critics: DDPG's 1, TD3's 2)
    minibatch                           update.Batch(obs, act, rew, obs2, done[, discount])
    replay arrays                       replay.Replay (the buffer's rows, links, normalization)
    scratch                             update.Work, carved from one allocation per batch size

``update`` runs one update on a given minibatch, ``update_burst`` samples K minibatches from a
replay buffer and runs K updates in one jitted call, ``update_each`` runs K updates on
minibatches that a Python function fills (hindsight experience replay's);
``set_learning_rates`` changes Adam's learning rates between calls (a schedule's);
``update_stepwise`` runs the same update by its plain-NumPy twin, numddpg.kernels.reference,
on the agent's own arrays; the tests hold the kernels equal to the twin.

What differs between algorithms is data on the class (algo, the default n_critics, smoothing,
hyperparameter_table, config_keys, counter_names, the kernel) that files and the update read;
the arrays an agent holds (``state_layout``) follow from its number of critics.

``chunks`` (C) cuts each minibatch into C row chunks that ``threads`` Python threads run side by
side, each in the same nogil kernel (numddpg.kernels.update, "Row chunks"); the numbers depend on C
alone, not on the thread count.
"""
from operator import attrgetter
from typing import NamedTuple, Optional

import numpy as np

from ..checks import MAX_CHUNKS, MAX_COUNT, check_bounds, check_dim, check_memory, check_widths
from ..files.checkpoint import (CheckpointError, is_int, is_number, read_checkpoint,
                                write_checkpoint)
from ..files.policy import NumpyPolicy, n_params
from ..kernels import reference as _reference
from ..kernels import rng as _rng
from ..kernels.nn import MLP, check_dtype, check_sizes
from ..kernels.optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, Adam
from ..kernels.sync import run_threads
from ..kernels.threads import usable_cpus
from ..kernels.update import (HP, N_STATS, ST_LOSS_PI, ST_LOSS_Q, ST_Q_MEAN, ST_Q_STD,
                              Batch, Net, carve_work, ddpg_updates, draw_smoothing_noise,
                              kernel_parts, td3_updates, work_size, work_slots)
from .buffer import NO_LINKS, Replay
from .hyperparameters import (ADAM_KEYS, DDPG_TABLE, LOSS_KEYS, MAX_CRITICS, TD3_EXTRA, TD3_TABLE,
                              describe, whole_as_json)
from .hyperparameters import check as check_hyperparameter
from .normalizer import ObsNormalizer

# A replay buffer's arrays of transitions (an update.Batch's first five fields)
TRANSITION_FIELDS = ("obs", "act", "rew", "obs2", "done")

__all__ = ["DDPGAgent", "TD3Agent", "N_STATS", "ST_LOSS_Q", "ST_LOSS_PI", "ST_Q_MEAN",
           "ST_Q_STD", "check_bounds", "check_dim"]


class StateArray(NamedTuple):
    """Where one array of an agent's state lives, and what it is."""
    attr: str                   # the attribute path that holds it ("pi_optim.m")
    net: Optional[str]          # the network whose flat layout it has ("actor", "critic");
    #                             None: the generator's state (uint64, 1 element)
    symbol: Optional[str]       # its name in numddpg.kernels.reference and docs/math.md


def state_layout_for(n_critics):
    """The arrays of an agent with ``n_critics`` critics, by their names in files, in the order
    files hold them: critic 1's under the names of DDPG's one critic ("critic", "q_m", ...),
    then critic k's for k = 2..n ("critic2", "critic2_targ", "q2_m", "q2_v", as TD3's second).
    Their symbols are numddpg.kernels.reference's (phi, m_q for one critic, else phi1, m_q1,
    phi2, ...: reference.critic_suffixes)."""
    first, *others = _reference.critic_suffixes(n_critics)
    layout = {
        "actor": StateArray("actor.params", "actor", "theta"),
        "critic": StateArray("critic.params", "critic", f"phi{first}"),
        "actor_targ": StateArray("actor_targ.params", "actor", "theta_targ"),
        "critic_targ": StateArray("critic_targ.params", "critic", f"phi{first}_targ"),
        "pi_m": StateArray("pi_optim.m", "actor", "m_pi"),
        "pi_v": StateArray("pi_optim.v", "actor", "v_pi"),
        "q_m": StateArray("q_optim.m", "critic", f"m_q{first}"),
        "q_v": StateArray("q_optim.v", "critic", f"v_q{first}"),
        "rng_state": StateArray("rng_state", None, None),
    }
    for k in others:
        layout.update({f"critic{k}": StateArray(f"critic{k}.params", "critic", f"phi{k}"),
                       f"critic{k}_targ": StateArray(f"critic{k}_targ.params", "critic",
                                                     f"phi{k}_targ"),
                       f"q{k}_m": StateArray(f"q{k}_optim.m", "critic", f"m_q{k}"),
                       f"q{k}_v": StateArray(f"q{k}_optim.v", "critic", f"v_q{k}")})
    return layout


class DDPGAgent:
    """Actor, critic, their targets, two Adam states and the workspaces of the fused update.

    Parameters
    ----------
    obs_dim, act_dim : int
    act_low, act_high : float or (act_dim,) array — finite, low < high (may be asymmetric).
    hidden_sizes : sequence of int — hidden widths of both networks; () for none (a linear
        actor tanh(W s + b) and linear critics W [s, a] + b).
    gamma : discount in [0, 1].       polyak : target averaging weight rho in [0, 1].
    pi_lr, q_lr : Adam learning rates of actor and critic (> 0).
    weight_decay, decoupled_weight_decay, adam_beta1, adam_beta2, adam_eps : keyword only,
        Adam's options (numddpg.engine.hyperparameters; defaults: no weight decay,
        torch.optim.Adam's betas 0.9, 0.999 and eps 1e-8).
    dtype : np.float32 (training) or np.float64 (gradient checks).
    seed : int or None — initialises the networks and the minibatch sampler.
    chunks : int >= 1 — row chunks per minibatch (numddpg.kernels.update, "Row chunks"): 1 is
        the serial update; 2 lets two threads share each update.  Results depend on it
        (summation order).
    n_critics : int >= 1 — critics, each regressed to y = r + gamma (1 - d) min_k
        Q_k_targ(s', a'); the actor follows critic 1 (None: the class's n_critics).
    action_l2 : float >= 0, keyword only — the actor's action penalty, J += action_l2 mean(u^2)
        over rows and action dims of its tanh output u (0: none; the HER papers: 1.0).
    clip_return : bool, keyword only — clip the TD target to [-1 / (1 - gamma), 0], for rewards
        in [-1, 0] (the HER papers' clip_return).

    Attributes: ``actor``, ``critic``, ``actor_targ``, ``critic_targ`` (numddpg.MLP: critic 1
    and its target), ``critics``, ``critics_targ`` (all n), ``critic1`` .. ``critic<n>`` and
    ``critic<k>_targ`` by number, ``pi_optim``, ``q_optim`` (numddpg.kernels.optim.Adam: critic
    1's), ``q_optims`` (all n; ``q<k>_optim`` by number), ``mid``, ``half`` (act_dim,).

    The class attributes below are the algorithm as data: files, the update kernel and the
    plain-NumPy twin read them, so an algorithm is a subclass that sets its own (TD3Agent).
    """

    algo = "ddpg"                        # its name in files, flags and run directories
    n_critics = 1                        # critics by default, each with a target and an Adam state
    smoothing = False                    # target policy smoothing (its draws: Work's eps)
    hyperparameter_table = DDPG_TABLE    # the kinds and ranges its values are checked against
    # config()'s keys (besides AGENT_OPTIONAL_KEYS), in the order files hold them; a key that
    # DDPG's config() does not write is the attribute of the same name
    config_keys = ("algo", "obs_dim", "act_dim", "act_low", "act_high", "hidden_sizes", "gamma",
                   "polyak", "pi_lr", "q_lr", "dtype")
    # state_dict()'s arrays, in the order files hold them (its "counters" follow them), with
    # the default number of critics (an agent's own: its state_layout attribute)
    state_layout = state_layout_for(n_critics)
    # the step counts: state_dict()["counters"] and the update kernel's t, in this order
    counter_names = ("t_pi", "t_q")
    # the update kernel (numddpg.kernels.update)
    updates = staticmethod(ddpg_updates)

    def __init__(self, obs_dim, act_dim, act_low, act_high, hidden_sizes=(256, 256), gamma=0.99,
                 polyak=0.995, pi_lr=1e-3, q_lr=1e-3, dtype=np.float32, seed=None, chunks=1,
                 qf_hidden_sizes=None, n_critics=None, *, weight_decay=0.0,
                 decoupled_weight_decay=True, adam_beta1=ADAM_BETA1, adam_beta2=ADAM_BETA2,
                 adam_eps=ADAM_EPS, action_l2=0.0, clip_return=False):
        self.n_critics = self._checked("n_critics",
                                       type(self).n_critics if n_critics is None else n_critics)
        self.state_layout = state_layout_for(self.n_critics)
        self.chunks = check_dim("chunks", chunks)
        if self.chunks > MAX_CHUNKS:
            raise ValueError(f"chunks must be at most {MAX_CHUNKS}, got {chunks!r}")
        self.obs_dim = check_dim("obs_dim", obs_dim)
        self.act_dim = check_dim("act_dim", act_dim)
        hidden = check_sizes([1, *check_widths("hidden_sizes", hidden_sizes), 1],
                             "hidden_sizes")[1:-1]
        self.hidden_sizes = hidden
        # the critics' widths (SB3's net_arch=dict(pi=..., qf=...)); None: the actor's
        self.qf_hidden_sizes = None if qf_hidden_sizes is None else check_sizes(
            [1, *check_widths("qf_hidden_sizes", qf_hidden_sizes), 1], "qf_hidden_sizes")[1:-1]
        self.gamma = self._checked("gamma", gamma)
        self.polyak = self._checked("polyak", polyak)
        self.pi_lr = self._checked("pi_lr", pi_lr)
        self.q_lr = self._checked("q_lr", q_lr)
        for name, value in zip(ADAM_KEYS, (weight_decay, decoupled_weight_decay, adam_beta1,
                                           adam_beta2, adam_eps)):
            setattr(self, name, self._checked(name, value))
        self.action_l2 = self._checked("action_l2", action_l2)
        self.clip_return = self._checked("clip_return", clip_return)
        self.dtype = check_dtype(dtype)
        self.act_low, self.act_high = check_bounds(act_low, act_high, self.act_dim)
        o, a, h, hq = self.obs_dim, self.act_dim, self.hidden_sizes, self.critic_widths
        check_memory((n_params([o, *h, a]) + self.n_critics * n_params([o + a, *hq, 1]))
                     * (5 + self.chunks) * self.dtype.itemsize,
                     f"{type(self).__name__} with hidden_sizes={h}, qf_hidden_sizes={hq}, "
                     f"obs_dim={o}, act_dim={a}")
        self.mid = ((self.act_high + self.act_low) / 2).astype(self.dtype)
        self.half = ((self.act_high - self.act_low) / 2).astype(self.dtype)

        seq = np.random.SeedSequence(seed)
        init_seed, sampler_seed = seq.spawn(2)
        rng = np.random.default_rng(init_seed)
        self._build_networks(rng)
        self._t = np.zeros(len(self.counter_names), np.int64)   # mirrors the counters
        self.rng_state = _rng.new_state(sampler_seed.generate_state(1, np.uint64)[0])
        # The kernels' hyperparameters are the config's values of the same names, as floats;
        # those an algorithm does not have keep HP's defaults (TD3's three: no smoothing, no
        # delay, which DDPG's kernel does not read anyway).  Adam's betas and eps are beta1,
        # beta2, eps inside the kernels (the symbols of its formula, docs/math.md).
        self._hp = HP(beta1=self.adam_beta1, beta2=self.adam_beta2, eps=self.adam_eps,
                      **{name: float(getattr(self, name))
                         for name in (*self.config_keys, *ADAM_KEYS) if name in HP._fields})
        # The update kernel and its optional parts' arguments: those this agent's
        # hyperparameters use, None for the rest, so that its compiled kernel has only its
        # own (a plain agent's none); an n-step minibatch brings its discount.
        self._kernel = self.updates
        self._parts = kernel_parts(self._critic_nets, self._hp.gamma, self.clip_return,
                                   self.action_l2, self.weight_decay)
        self._by_batch = {}                   # B -> (minibatch Batch, Work, sample indices)
        self._nstep_batches = {}              # B -> the minibatch with a discount (n-step)
        self.threads = self.chunks
        self._stats = np.zeros(N_STATS, np.float64)

    def _checked(self, name, value):
        """``value`` of hyperparameter ``name`` checked against the table (the one place its
        range is written), or ValueError naming it."""
        return check_hyperparameter(name, value, self.hyperparameter_table[name])

    @property
    def critic_widths(self):
        """The critics' hidden widths: qf_hidden_sizes, or the actor's hidden_sizes."""
        return self.hidden_sizes if self.qf_hidden_sizes is None else self.qf_hidden_sizes

    # -- construction -------------------------------------------------------------------------
    def _build_networks(self, rng):
        """The actor, then the critics one by one, initialised from ``rng`` in that order."""
        o, a, h, hq = self.obs_dim, self.act_dim, self.hidden_sizes, self.critic_widths
        self.actor = MLP([o, *h, a], output="tanh", dtype=self.dtype, rng=rng)
        self.critics = tuple(MLP([o + a, *hq, 1], output="identity", dtype=self.dtype, rng=rng)
                             for _ in range(self.n_critics))
        self.actor_targ = self.actor.copy()
        self.critics_targ = tuple(critic.copy() for critic in self.critics)
        self.pi_optim = Adam(self.actor.n_params, self.pi_lr, self.dtype, **self._adam_options())
        # every critic's Adam state (they step together)
        self.q_optims = tuple(Adam(critic.n_params, self.q_lr, self.dtype, **self._adam_options())
                              for critic in self.critics)
        self.critic, self.critic_targ, self.q_optim = (self.critics[0], self.critics_targ[0],
                                                       self.q_optims[0])
        for k, nets in enumerate(zip(self.critics, self.critics_targ, self.q_optims), 1):
            for name, net in zip((f"critic{k}", f"critic{k}_targ", f"q{k}_optim"), nets):
                setattr(self, name, net)
        self._actor_net = self._bundle(self.actor, self.actor_targ, self.pi_optim)
        self._critic_nets = tuple(self._bundle(*nets) for nets in
                                  zip(self.critics, self.critics_targ, self.q_optims))

    def _adam_options(self):
        """numddpg.kernels.optim.Adam's (and reference.adam's) keywords from the agent's."""
        return {"beta1": self.adam_beta1, "beta2": self.adam_beta2, "eps": self.adam_eps,
                "weight_decay": self.weight_decay, "decoupled": self.decoupled_weight_decay}

    def set_learning_rates(self, pi_lr, q_lr):
        """The Adam learning rates of the updates from now on (each finite and >= 0): a
        schedule's value for the coming burst (numddpg.sb3 evaluates SB3's learning-rate
        schedules so).  The kernels read them from the agent's HP; the config keeps the
        constructor's ``pi_lr`` and ``q_lr``, which a file records."""
        for name, lr in (("pi_lr", pi_lr), ("q_lr", q_lr)):
            if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.number)) \
                    or not (np.isfinite(lr) and lr >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {lr!r}")
        self._hp = self._hp._replace(pi_lr=float(pi_lr), q_lr=float(q_lr))

    @property
    def learning_rates(self):
        """(pi_lr, q_lr) of the next updates (``set_learning_rates``; else the config's)."""
        return self._hp.pi_lr, self._hp.q_lr

    def _bundle(self, net, targ, optim):
        """The update.Net of one network: its arrays, by reference, and a (chunks, P) gradient."""
        grad = np.zeros((self.chunks, net.n_params), self.dtype)
        return Net(net.params, targ.params, grad, optim.m, optim.v, net._sizes_arr)

    def _buffers(self, B):
        """The minibatch arrays, the Work bundle and the index array for batches of B rows
        (allocated on the first batch of that size, then reused)."""
        if B not in self._by_batch:
            o, a = self.obs_dim, self.act_dim
            batch = Batch(np.empty((B, o), self.dtype), np.empty((B, a), self.dtype),
                          np.empty(B, self.dtype), np.empty((B, o), self.dtype),
                          np.empty(B, self.dtype))
            slots = work_slots(B, self.chunks, o, a, self.actor.sizes, self.critic.sizes,
                               self.smoothing)
            work = carve_work(np.empty(work_size(slots), self.dtype), slots)
            self._by_batch[B] = (batch, work, np.empty(B, np.int64))
        return self._by_batch[B]

    def _nstep_batch(self, batch):
        """``batch`` with a discount (B,) of its own for n-step minibatches (the same arrays
        otherwise; made once per batch size)."""
        B = batch.obs.shape[0]
        if B not in self._nstep_batches or self._nstep_batches[B].obs is not batch.obs:
            self._nstep_batches[B] = batch._replace(discount=np.empty(B, np.float64))
        return self._nstep_batches[B]

    # The counters the update kernel advances in t, as attributes: t_pi and t_q are the Adam
    # step counts (every critic's: they step together); TD3 adds its own n_updates.
    @property
    def t_pi(self):
        return self.pi_optim.t

    @t_pi.setter
    def t_pi(self, t):
        self.pi_optim.t = int(t)

    @property
    def t_q(self):
        return self.q_optim.t

    @t_q.setter
    def t_q(self, t):
        for optim in self.q_optims:
            optim.t = int(t)

    def _sync_t_in(self):
        self._t[:] = self._counters()

    def _sync_t_out(self):
        self._set_counters(self._t)

    # -- acting -------------------------------------------------------------------------------
    def policy(self):
        """The deterministic policy mu(s) = clip(mid + half tanh(actor(s)), low, high) as
        numddpg's one policy class (numddpg.files.policy.NumpyPolicy, what a policy file
        holds), running this agent's live actor with its jitted forward pass."""
        policy = NumpyPolicy(self.actor.params, self.actor.sizes, self.mid, self.half,
                             self.act_low, self.act_high, self.dtype)
        policy.forward = self.actor.forward
        return policy

    def act(self, obs, noise_scale=0.0, rng=None):
        """mu(obs) for one observation (obs_dim,) or a batch (B, obs_dim) (``policy``).

        With noise_scale > 0, adds Gaussian noise of std noise_scale * half (from ``rng``, a
        numpy Generator) and clips to [act_low, act_high].
        """
        action = self.policy()(obs)
        if noise_scale > 0:
            rng = np.random.default_rng() if rng is None else rng
            action = action + noise_scale * self.half * rng.standard_normal(action.shape)
            action = np.clip(action, self.act_low, self.act_high)
        return action

    # -- updating -----------------------------------------------------------------------------
    def check_batch(self, obs, act, rew, obs2, done):
        """Return the batch as C-contiguous arrays of the agent's dtype, or raise ValueError
        (``check_discount`` checks an n-step batch's discount)."""
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

    def check_discount(self, discount, B):
        """An n-step minibatch's per-row discount gamma^m (1 - d) as a C-contiguous float64
        (B,) array of numbers in [0, 1] (None: one-step), or ValueError."""
        if discount is None:
            return None
        arr = np.ascontiguousarray(discount, dtype=np.float64)
        if arr.shape != (B,):
            raise ValueError(f"discount must have shape ({B},), one per row, got {arr.shape}")
        bad = np.flatnonzero(~((arr >= 0) & (arr <= 1)))
        if bad.size:
            raise ValueError(f"discount[{bad[0]}] is {arr[bad[0]]!r}: a discount gamma^m "
                             "(1 - d) lies in [0, 1]")
        return arr

    def _nets(self):
        """The Net bundles, in the update kernels' argument order: the actor's, critic 1's (the
        others are among the optional parts)."""
        return (self._actor_net, self._critic_nets[0])

    @property
    def threads(self):
        """Threads that share each update's chunks (1 .. chunks); changing it never changes a
        result (numddpg.kernels.update, "Row chunks")."""
        return self._threads

    @threads.setter
    def threads(self, n):
        """At most the chunks, and the CPUs: a thread waiting at a barrier for one that has no
        core to run on would wait for its time slice."""
        self._threads = max(1, min(check_dim("threads", n), self.chunks, usable_cpus()))
        # numddpg.kernels.sync's flags: a cache line per thread, then the abort flag
        self._flags = np.zeros((self._threads + 1, 8), np.int64)

    def _run(self, K, sample, replay, size, idx, batch, work, stats):
        """K updates of the agent's kernel on its threads (numddpg.kernels.sync.run_threads),
        with n-step targets when ``batch`` has a discount."""
        run_threads(self._kernel, self._threads, self._flags,
                    (K, sample, replay, size, self.rng_state, idx, *self._nets(), self.mid,
                     self.half, self._hp, self._t, batch, work, stats, self._flags,
                     batch.discount, *self._parts))

    def update(self, obs, act, rew, obs2, done, discount=None):
        """One update on a minibatch; returns {loss_q, loss_pi, q_mean, q_std}.  discount (B,):
        an n-step minibatch's per-row bootstrap weights gamma^m (1 - d) (docs/math.md section
        12), rew its n-step returns; None: one-step targets, gamma (1 - d)."""
        batch = Batch(*self.check_batch(obs, act, rew, obs2, done))
        batch = batch._replace(discount=self.check_discount(discount, batch.obs.shape[0]))
        _, work, _ = self._buffers(batch.obs.shape[0])
        self._sync_t_in()
        stats = self._stats.reshape(1, N_STATS)
        replay = self._unsampled(batch)
        self._run(1, False, replay, 0, np.empty(0, np.int64), batch, work, stats)
        self._sync_t_out()
        return self._stats_dict(self._stats)

    def gradients(self):
        """{network name ("actor", "critic", "critic2", ...): a copy of the gradient the last
        update applied to it} (a TD3 call without an actor step leaves the actor's from the last
        one that had it)."""
        names = [name for name, held in self.state_layout.items()
                 if held.attr.endswith(".params") and not name.endswith("_targ")]
        nets = (self._actor_net, *self._critic_nets)
        return {name: net.grad[0].copy() for name, net in zip(names, nets)}

    def update_burst(self, buffer, batch_size, K, obs_norm=None):
        """K updates on minibatches sampled from ``buffer`` (a numddpg ReplayBuffer-like object
        with obs, act, rew, obs2, done arrays and ``size``) in one jitted call.

        obs_norm : a numddpg.engine.normalizer.ObsNormalizer whose map the minibatches'
            observations get as they are gathered (None: the raw observations).
        Returns a (K, 4) float64 array of per-update statistics (loss_q, loss_pi, q_mean, q_std).
        """
        replay, size = self._check_replay(buffer, obs_norm)
        B = check_dim("batch_size", batch_size)
        batch, work, idx = self._buffers(B)
        if replay.n_steps > 1:
            batch = self._nstep_batch(batch)
        stats = np.empty((check_dim("K", K), N_STATS), np.float64)
        self._sync_t_in()
        self._run(int(K), True, replay, size, idx, batch, work, stats)
        self._sync_t_out()
        return stats

    def update_each(self, fill, batch_size, K):
        """K updates, each on the minibatch that ``fill(batch)`` writes into the agent's
        minibatch arrays (``batch``: an update Batch of batch_size rows of the agent's dtype,
        observations as the networks read them, normalized if they are) just before it: for
        minibatches made in Python, such as hindsight experience replay's, whose rewards the
        env computes (numddpg.engine.her).  The kernel of ``update_burst``, one update per
        call, with its sampling left out.  Returns a (K, 4) float64 array of statistics."""
        B = check_dim("batch_size", batch_size)
        batch, work, idx = self._buffers(B)
        stats = np.empty((check_dim("K", K), N_STATS), np.float64)
        replay = self._unsampled(batch)
        self._sync_t_in()
        try:
            for k in range(int(K)):
                fill(batch)
                self._run(1, False, replay, 0, idx, batch, work, stats[k:k + 1])
        finally:
            self._sync_t_out()
        return stats

    def _unsampled(self, batch):
        """A Replay of ``batch``'s own arrays for a kernel call that samples nothing (the
        kernel's argument types)."""
        return Replay(batch.obs, batch.act, batch.rew, batch.obs2, batch.done,
                      *self._norm_arrays(None))

    def _norm_arrays(self, obs_norm):
        """(shift, scale, clip) of ``obs_norm``, checked, or of the identity map."""
        if obs_norm is None:
            if getattr(self, "_identity", None) is None:
                self._identity = ObsNormalizer.identity(self.obs_dim)
            obs_norm = self._identity
        arrays = (obs_norm.shift, obs_norm.scale, obs_norm.clip)
        if not all(isinstance(x, np.ndarray) and x.dtype == np.float64 for x in arrays) or (
                arrays[0].shape, arrays[1].shape, arrays[2].shape) != (
                (self.obs_dim,), (self.obs_dim,), (1,)):
            raise ValueError(f"obs_norm must hold float64 shift, scale ({self.obs_dim},) and "
                             f"clip (1,), got {obs_norm!r}")
        return arrays

    def _check_replay(self, buffer, obs_norm=None):
        """(Replay of the buffer's arrays, size) after checking what the jitted sampler will
        index: N rows of (o,), (a,), (), (o,), () float32/float64 C-contiguous arrays, and
        1 <= size <= N; with the buffer's n_steps > 1 its next_row (N,) int64 and gamma.  (The
        kernel reads rows below ``size`` with no bounds check.)

        The arrays are checked once: while the buffer and normalizer hand over the very same
        array objects (whose shapes and dtypes cannot change), the checked Replay is reused and
        only ``size`` is checked again (a burst can be a single update, every env step)."""
        arrays = [getattr(buffer, f, None) for f in TRANSITION_FIELDS]
        nstep = (getattr(buffer, "n_steps", 1), getattr(buffer, "gamma", 1.0))
        links = getattr(buffer, "next_row", NO_LINKS)
        norm = (None, None, None) if obs_norm is None else (
            getattr(obs_norm, "shift", None), getattr(obs_norm, "scale", None),
            getattr(obs_norm, "clip", None))
        held = arrays + list(norm) + [links]
        cached = getattr(self, "_replay", None)
        if (cached is None or not all(c is x for c, x in zip(cached[0], held))
                or cached[2] != nstep):
            self._replay = (held, self._checked_replay(arrays, obs_norm, links, *nstep), nstep)
        replay = self._replay[1]
        n = replay.obs.shape[0]
        size = buffer.size
        if not (is_int(size) or isinstance(size, np.integer)) or not 0 <= size <= n:
            raise ValueError(f"replay buffer size must be an integer from 0 to its {n} rows, "
                             f"got {size!r}")
        if size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return replay, int(size)

    def _checked_replay(self, arrays, obs_norm, links=NO_LINKS, n_steps=1, gamma=1.0):
        """Replay of the replay arrays and the normalization (and n-step returns' links,
        n_steps and gamma), after checking their shapes and dtypes (ValueError naming the first
        bad one)."""
        n = getattr(arrays[0], "shape", (0,))[0]
        o, a = self.obs_dim, self.act_dim
        n_steps = check_hyperparameter("n_steps", n_steps, DDPG_TABLE["n_steps"])
        if n_steps > 1:
            gamma = self._checked("gamma", gamma)
            if not (isinstance(links, np.ndarray) and links.shape == (n,)
                    and links.dtype == np.int64 and links.flags.c_contiguous):
                raise ValueError(f"replay buffer next_row (n_steps={n_steps}) must be a "
                                 f"C-contiguous int64 array of shape ({n},), got "
                                 f"{getattr(links, 'dtype', type(links).__name__)} "
                                 f"{getattr(links, 'shape', '')}")
        for name, arr, tail in zip(TRANSITION_FIELDS, arrays, ((o,), (a,), (), (o,), ())):
            if not (isinstance(arr, np.ndarray) and arr.shape == (n, *tail)
                    and arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous):
                raise ValueError(f"replay buffer {name} must be a C-contiguous float32/float64 "
                                 f"array of shape ({n}, {', '.join(map(str, tail))}) for this "
                                 f"agent (obs_dim={o}, act_dim={a}), got "
                                 f"{getattr(arr, 'dtype', type(arr).__name__)} "
                                 f"{getattr(arr, 'shape', '')}")
        if n_steps == 1:
            return Replay(*arrays, *self._norm_arrays(obs_norm))
        return Replay(*arrays, *self._norm_arrays(obs_norm), links, n_steps, float(gamma))

    def update_stepwise(self, obs, act, rew, obs2, done, discount=None):
        """The same update as ``update`` by its plain-NumPy twin, numddpg.kernels.reference
        (slower; for tests and for reading), on this agent's own arrays; returns
        {loss_q, loss_pi, q_mean, q_std}.  Equal to ``update`` but for rounding (the tests
        hold the two to 1e-12 in float64).  Nothing changes if the batch is refused."""
        batch = self.check_batch(obs, act, rew, obs2, done)
        discount = self.check_discount(discount, batch[0].shape[0])
        # the twin's state dict, by docs/math.md's names (state_layout's symbols)
        live = {held.symbol: array for held, array in
                zip(self.state_layout.values(), self._state_arrays().values()) if held.symbol}
        state = dict(live, **dict(zip(self.counter_names, self._counters().tolist())))
        new, info = self._reference_update(state, batch, discount)
        for symbol, array in live.items():
            array[...] = new[symbol]
        self._set_counters([new[name] for name in self.counter_names])
        return {name: float(value) for name, value in info.items()}

    def _reference_update(self, state, batch, discount=None):
        """One update of the twin on its state dict (reference.ddpg_update's arguments)."""
        return _reference.ddpg_update(state, batch, self.actor.sizes, self.critic.sizes,
                                      self.mid, self.half, self.gamma, self.polyak,
                                      *self.learning_rates, self._adam_options(), self.n_critics,
                                      self.action_l2, self.clip_return, discount)

    # -- state --------------------------------------------------------------------------------
    def _state_arrays(self):
        """name -> the live array that holds that part of the agent's state (state_layout)."""
        return {name: attrgetter(held.attr)(self) for name, held in self.state_layout.items()}

    def config(self):
        """The constructor's arguments (JSON-friendly) that rebuild an agent of this shape."""
        cfg = {"algo": self.algo, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
               "act_low": self.act_low.tolist(), "act_high": self.act_high.tolist(),
               "hidden_sizes": list(self.hidden_sizes), "gamma": self.gamma,
               "polyak": self.polyak, "pi_lr": self.pi_lr, "q_lr": self.q_lr,
               "dtype": self.dtype.name, "chunks": self.chunks,
               "qf_hidden_sizes": (None if self.qf_hidden_sizes is None
                                   else list(self.qf_hidden_sizes)),
               "n_critics": self.n_critics,
               **{key: getattr(self, key) for key in (*ADAM_KEYS, *LOSS_KEYS)}}
        cfg.update((key, getattr(self, key)) for key in self.config_keys if key not in cfg)
        return cfg

    def state_dict(self):
        """Copies of every array of the agent's state, plus the Adam step counts (ints)."""
        state = {k: v.copy() for k, v in self._state_arrays().items()}
        state["counters"] = self._counters()
        return state

    def _counters(self):
        return np.array([getattr(self, name) for name in self.counter_names], np.int64)

    def _set_counters(self, c):
        for name, value in zip(self.counter_names, c):
            setattr(self, name, int(value))

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


class TD3Agent(DDPGAgent):
    """TD3 (Fujimoto et al. 2018): DDPGAgent with two critics by default, the target's minimum
    over them, target policy smoothing and a delayed actor.

    Extra parameters: target_noise and noise_clip (target policy smoothing, in units of the
    action half-range; 0.2 and 0.5), policy_delay (actor and polyak every policy_delay-th
    update; 2), n_critics (2).  Attributes ``critic1``, ``critic2``, ``critic1_targ``,
    ``critic2_targ`` (``critic``/``critic_targ`` name critic1 and its target).  The smoothing
    noise comes from the agent's own generator state ``rng_state``, as the minibatch indices do.
    """

    algo = "td3"
    n_critics = 2
    smoothing = True
    hyperparameter_table = TD3_TABLE
    config_keys = DDPGAgent.config_keys + tuple(TD3_EXTRA)   # its three hyperparameters
    state_layout = state_layout_for(n_critics)     # DDPG's arrays, then the second critic's
    counter_names = ("t_pi", "t_q", "n_updates")     # n_updates: the policy delay's clock
    updates = staticmethod(td3_updates)

    def __init__(self, obs_dim, act_dim, act_low, act_high, hidden_sizes=(256, 256), gamma=0.99,
                 polyak=0.995, pi_lr=1e-3, q_lr=1e-3, dtype=np.float32, seed=None,
                 chunks=1, target_noise=0.2, noise_clip=0.5, policy_delay=2, qf_hidden_sizes=None,
                 n_critics=None, **options):
        # (checked here rather than by the table: their messages name the unit, half-ranges)
        if not (np.isfinite(target_noise) and target_noise >= 0):
            raise ValueError(f"target_noise must be >= 0 (a fraction of the action half-range), "
                             f"got {target_noise!r}")
        if not (np.isfinite(noise_clip) and noise_clip >= 0):
            raise ValueError(f"noise_clip must be >= 0 (a fraction of the action half-range), "
                             f"got {noise_clip!r}")
        self.policy_delay = self._checked("policy_delay", policy_delay)
        self.target_noise, self.noise_clip = float(target_noise), float(noise_clip)
        super().__init__(obs_dim, act_dim, act_low, act_high, hidden_sizes, gamma, polyak,
                         pi_lr, q_lr, dtype, seed, chunks, qf_hidden_sizes, n_critics,
                         **options)

    def _build_networks(self, rng):
        super()._build_networks(rng)
        self.n_updates = 0

    def _reference_update(self, state, batch, discount=None):
        """reference.td3_update, with the smoothing draws ``update`` would make: B x act_dim
        normals from the agent's generator, row-major (the kernel's own draw_smoothing_noise)."""
        eps = np.empty((batch[0].shape[0], self.act_dim))
        draw_smoothing_noise(self.rng_state, eps)
        return _reference.td3_update(state, batch, eps, self.actor.sizes, self.critic.sizes,
                                     self.mid, self.half, self.gamma, self.polyak,
                                     *self.learning_rates, self.target_noise, self.noise_clip,
                                     self.policy_delay, self._adam_options(), self.n_critics,
                                     self.action_l2, self.clip_return, discount)


# ---------------------------------------------------------------------------------------------
# Files: the agent's record and arrays in a checkpoint (numddpg.checkpoint's container)
# ---------------------------------------------------------------------------------------------

# The algorithms, by the name files give them: everything below reads the class's data.
AGENT_CLASSES = {cls.algo: cls for cls in (DDPGAgent, TD3Agent)}
AGENT_CONFIG_KEYS = {algo: cls.config_keys for algo, cls in AGENT_CLASSES.items()}
# Adam's second moments (held in an optimizer's v), by their names in any agent's state
ADAM_SECOND_MOMENTS = tuple(name for name, held in state_layout_for(MAX_CRITICS).items()
                            if held.attr.endswith("_optim.v"))
# Optional keys: files written before they existed load with the default (1 chunk: the serial
# update, which they ran; Adam without weight decay, with PyTorch's betas and eps; None critics:
# the algorithm's n_critics, the only number there was, filled in by full_config; no action
# penalty, no clip of the target).  MAX_CHUNKS bounds what a file may ask to allocate per
# network.
AGENT_OPTIONAL_KEYS = {"chunks": 1, "qf_hidden_sizes": None, "n_critics": None,
                       **{key: DDPG_TABLE[key].default for key in (*ADAM_KEYS, *LOSS_KEYS)}}


def full_config(cfg):
    """The agent config ``cfg`` (checked) with the optional keys it lacks as the agent that
    wrote it had them: what ``config()`` returns for the agent it builds."""
    full = {**AGENT_OPTIONAL_KEYS, **cfg}
    if full["n_critics"] is None:
        full["n_critics"] = AGENT_CLASSES[cfg["algo"]].n_critics
    return full


def check_agent_config(cfg, where):
    """Raise CheckpointError unless ``cfg`` is a well-formed agent.config() record."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: agent config must be a JSON object, got {cfg!r}")
    algo = cfg.get("algo")
    if algo not in AGENT_CLASSES:
        raise CheckpointError(f"{where}: agent algo {algo!r} is not one of "
                              f"{sorted(AGENT_CLASSES)}")
    cls = AGENT_CLASSES[algo]
    keys = cls.config_keys
    missing = [k for k in keys if k not in cfg]
    extra = [k for k in cfg if k not in keys and k not in AGENT_OPTIONAL_KEYS]
    if missing or extra:
        raise CheckpointError(f"{where}: {algo} agent config is missing {missing} / has unknown "
                              f"keys {extra}")

    def need(ok, key, what):
        if not ok:
            raise CheckpointError(f"{where}: agent config {key}={cfg[key]!r} must be {what}")

    for key in ("obs_dim", "act_dim"):
        need(is_int(cfg[key]) and cfg[key] > 0, key, "a positive integer")
    for key in ("act_low", "act_high"):
        v = cfg[key]
        need(isinstance(v, list) and len(v) == cfg["act_dim"] and all(map(is_number, v)),
             key, f"a list of act_dim={cfg['act_dim']} finite numbers")
    need(all(lo < hi for lo, hi in zip(cfg["act_low"], cfg["act_high"])), "act_low",
         f"below act_high={cfg['act_high']} in every dimension")
    need(cfg.get("chunks", 1) is not None, "chunks", "an integer (the agent's)")
    # the hyperparameters among them: checked by their kind and range in the one table
    table = cls.hyperparameter_table
    for key in [k for k in cfg if k in table]:
        v = cfg[key]
        if v is not None and (isinstance(v, list) != (table[key].kind == "widths")
                              or not whole_as_json(v, table[key])):
            need(False, key, describe(table[key]))
        try:
            check_hyperparameter(key, cfg[key], table[key])
        except ValueError as exc:
            raise CheckpointError(f"{where}: agent config: {exc}") from None


def agent_layer_sizes(cfg):
    """{"actor": [o, *h, a], "critic": [o + a, *hq, 1]} of an agent config (hq: the critics'
    qf_hidden_sizes, or h)."""
    o, a, h = cfg["obs_dim"], cfg["act_dim"], list(cfg["hidden_sizes"])
    hq = h if cfg.get("qf_hidden_sizes") is None else list(cfg["qf_hidden_sizes"])
    return {"actor": [o, *h, a], "critic": [o + a, *hq, 1]}


def agent_array_specs(cfg, prefix=""):
    """{prefix + name: (dtype, shape)} of the arrays in a state_dict of an agent with ``cfg``."""
    cls = AGENT_CLASSES[cfg["algo"]]
    n = {net: n_params(sizes) for net, sizes in agent_layer_sizes(cfg).items()}
    specs = {prefix + name: (cfg["dtype"], (n[held.net],)) if held.net is not None
             else ("uint64", (1,))                       # the generator's state
             for name, held in state_layout_for(full_config(cfg)["n_critics"]).items()}
    specs[prefix + "counters"] = ("int64", (len(cls.counter_names),))
    return specs


def check_agent_meta(meta, where, cfg_key="config", sizes_key="layer_sizes"):
    """Check the agent config and layer sizes in ``meta``; return the config."""
    cfg = meta.get(cfg_key)
    check_agent_config(cfg, where)
    sizes = meta.get(sizes_key)
    want = agent_layer_sizes(cfg)
    if sizes != want or not all(is_int(n) for net in sizes.values() for n in net):
        raise CheckpointError(f"{where}: layer sizes {sizes!r} are inconsistent with the agent "
                              f"config (obs_dim={cfg['obs_dim']}, act_dim={cfg['act_dim']}, "
                              f"hidden_sizes={cfg['hidden_sizes']}), which gives {want}")
    return cfg


def agent_arrays(agent, prefix=""):
    """agent.state_dict() with names prefixed (for a checkpoint's array table)."""
    return {prefix + k: v for k, v in agent.state_dict().items()}


def agent_state(arrays, where, prefix=""):
    """The state_dict held in ``arrays`` under ``prefix``, after checking that step counts and
    Adam second moments are non-negative."""
    state = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    if np.any(state["counters"] < 0) or np.any(state["counters"] > MAX_COUNT):
        raise CheckpointError(f"{where}: array {prefix + 'counters'!r} holds the step counts "
                              f"{state['counters'].tolist()}; each must lie in 0..2**53 (more "
                              "updates than a run can make)")
    for name in ADAM_SECOND_MOMENTS:
        if name in state and np.any(state[name] < 0):
            raise CheckpointError(f"{where}: array {prefix + name!r} (an Adam second moment) "
                                  "has a negative entry")
    return state


def agent_from_arrays(cfg, arrays, where, prefix=""):
    """A new agent built from ``cfg`` (checked) holding the state in ``arrays`` (checked)."""
    state = agent_state(arrays, where, prefix)
    cls = AGENT_CLASSES[cfg["algo"]]
    kwargs = {k: v for k, v in cfg.items() if k not in ("algo", "obs_dim", "act_dim", "act_low",
                                                         "act_high")}
    kwargs["dtype"] = np.dtype(kwargs["dtype"])
    kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
    if kwargs.get("qf_hidden_sizes") is not None:
        kwargs["qf_hidden_sizes"] = tuple(kwargs["qf_hidden_sizes"])
    try:
        agent = cls(cfg["obs_dim"], cfg["act_dim"], cfg["act_low"], cfg["act_high"], seed=0,
                    **kwargs)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: {cls.__name__} refuses the saved config: {e}") from None
    try:
        agent.load_state_dict(state)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    return agent


def save_agent(path, agent):
    """Save a DDPGAgent/TD3Agent (networks, targets, Adam state, generator, counters)."""
    cfg = agent.config()
    meta = {"kind": "agent", "algo": cfg["algo"], "config": cfg,
            "layer_sizes": agent_layer_sizes(cfg)}
    return write_checkpoint(path, agent_arrays(agent), meta)


def load_agent(path):
    """The agent saved by ``save_agent`` at ``path``, bit for bit; CheckpointError otherwise."""
    where = str(path)
    def expect(meta):
        cfg = check_agent_meta(meta, where)
        if meta.get("algo") != cfg["algo"]:
            raise CheckpointError(f"{where}: algo {meta.get('algo')!r} is not the config's "
                                  f"{cfg['algo']!r}")
        return agent_array_specs(cfg)

    meta, arrays = read_checkpoint(path, "agent", expect)
    return agent_from_arrays(meta["config"], arrays, where)
