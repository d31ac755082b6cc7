"""numddpg's DDPG and TD3 updates against PyTorch autograd and torch.optim.Adam (and AdamW, and
Adam's weight_decay, with other betas and eps and changing learning rates), in float64.

llm.c's test compares every gradient tensor and several optimizer steps of its hand-written C
training loop with PyTorch on the same weights and batches.  This is the same test for numddpg:
the DDPG and TD3 updates are written below a second time in PyTorch, in the few lines a PyTorch
user would write (autograd for every gradient, torch.optim.Adam for every step, the polyak
average as a loop over ``parameters()``), started from the agent's own initial parameters and
fed the same minibatches and, for TD3, the same smoothing draws (reproduced from a copy of the
agent's generator state, as tests/test_td3.py does for numddpg.kernels.reference).  After every update,
every array of the state must agree: the parameters of actor and critic(s), of their targets,
both Adam moments of every network, the gradient that update applied to each network, and the
four statistics.  Nothing of numddpg is used on the PyTorch side but the starting parameters.

Skipped cleanly without torch; CI installs the CPU wheel (``pip install torch==2.13.0``).

Tolerance (float64): TORCH = 1e-10 of each array's scale (its largest |element|), and 1e-10
relative on the statistics.  The two sides compute the same real numbers with different
rounding: BLAS and PyTorch sum the matrix products in different orders, PyTorch's Adam forms
m with lerp and divides by sqrt(1 - beta2^t) where numddpg multiplies by its reciprocal
(docs/math.md, "Adam").  Each is ~1e-16 relative per operation; Adam divides a moment by
sqrt(v_hat) + eps, which can magnify an absolute gradient difference delta into a step
difference of at most lr * delta / eps (1e-3 * 1e-17 / 1e-8 = 1e-12 for a gradient element that
cancels to ~0).  Measured over 20 seeds of the cases below (DDPG and TD3, 1 and 3 chunks, six
updates each): 4e-15 of the scale at most.  A wrong term moves the numbers by far more: Adam's
first step is ~lr sign(g) whatever |g|, so a sign error or a dropped term moves a parameter by
~1e-3, and a missing clip of the smoothed target action changes the critic gradients by ~1e-2
of their scale (tests/test_td3.py, measured).
"""
import copy

import numpy as np
import pytest

from numddpg.kernels import rng as nrng
from numddpg.engine.agents import DDPGAgent, TD3Agent

from helpers import random_batch, small_agent  # noqa: E402

torch = pytest.importorskip("torch")
nn = torch.nn

TORCH = 1e-10
N_UPDATES = 6          # with policy_delay 2: three TD3 actor steps and three target averages
B = 16


# --- the PyTorch twin: modules loaded from numddpg's flat layout ---------------------------------

def build(sizes, out):
    """nn.Sequential of nn.Linear (float64) with ReLU between layers and ``out`` after the last."""
    mods = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(n_in, n_out, dtype=torch.float64))
        mods.append(nn.ReLU() if k < len(sizes) - 2 else out)
    return nn.Sequential(*mods)


def linears(net):
    return [m for m in net if isinstance(m, nn.Linear)]


@torch.no_grad()
def load_flat(net, flat):
    """numddpg's flat layout W_0, b_0, W_1, ... (W_l is (fan_in, fan_out), row-major) into the
    modules: nn.Linear.weight is (fan_out, fan_in), the transpose."""
    p = 0
    for lin in linears(net):
        n_out, n_in = lin.weight.shape
        lin.weight.copy_(torch.as_tensor(flat[p:p + n_in * n_out]).reshape(n_in, n_out).T)
        p += n_in * n_out
        lin.bias.copy_(torch.as_tensor(flat[p:p + n_out]))
        p += n_out
    assert p == flat.shape[0]


def flat_of(net, what="param", opt=None):
    """A network's parameters ("param"), gradients ("grad") or Adam moments ("exp_avg",
    "exp_avg_sq" of ``opt``) as one vector in numddpg's flat layout."""
    parts = []
    for lin in linears(net):
        for tensor, is_weight in ((lin.weight, True), (lin.bias, False)):
            if what == "param":
                x = tensor
            elif what == "grad":
                x = tensor.grad
            elif what in opt.state[tensor]:
                x = opt.state[tensor][what]
            else:                                   # no step yet: Adam's moments start at 0
                x = torch.zeros_like(tensor)
            x = x.detach()
            parts.append((x.T if is_weight else x).reshape(-1))
    return torch.cat(parts).numpy().copy()


class TorchDDPG:
    """DDPG as a PyTorch user writes it (docs/math.md, section 8), from ``agent``'s parameters.
    With two critics and ``policy_delay``, TD3 (section 9)."""

    def __init__(self, agent, n_critics=1, target_noise=0.0, noise_clip=0.0, policy_delay=1,
                 optimizer=None, **optimizer_kwargs):
        self.gamma, self.rho = agent.gamma, agent.polyak
        self.target_noise, self.noise_clip, self.policy_delay = (target_noise, noise_clip,
                                                                 policy_delay)
        self.mid, self.half = torch.as_tensor(agent.mid), torch.as_tensor(agent.half)
        ours = [agent.critic] if n_critics == 1 else [agent.critic1, agent.critic2]
        self.actor = build(agent.actor.sizes, nn.Tanh())
        load_flat(self.actor, agent.actor.params)                       # theta
        self.critics = [build(net.sizes, nn.Identity()) for net in ours]
        for critic, net in zip(self.critics, ours):
            load_flat(critic, net.params)                               # phi (phi1, phi2)
        self.actor_targ = copy.deepcopy(self.actor)                     # targets start as copies
        self.critic_targs = [copy.deepcopy(critic) for critic in self.critics]
        for targ in (self.actor_targ, *self.critic_targs):
            targ.requires_grad_(False)
        # torch.optim.Adam's defaults are numddpg's: betas (0.9, 0.999), eps 1e-8.  One Adam
        # over both TD3 critics is two Adams stepped together (elementwise, one step count).
        # ``optimizer`` (default torch.optim.Adam) and its keywords: as a PyTorch user passes
        # them (AdamW, weight_decay, betas, eps).
        optimizer = optimizer or torch.optim.Adam
        self.pi_optim = optimizer(self.actor.parameters(), lr=agent.pi_lr, **optimizer_kwargs)
        phis = [p for critic in self.critics for p in critic.parameters()]
        self.q_optim = optimizer(phis, lr=agent.q_lr, **optimizer_kwargs)
        self.n_updates = 0
        self.n_clipped = [0, 0]    # TD3: elements where the noise clip, the bounds clip bound

    def mu(self, net, obs):
        return self.mid + self.half * net(obs)

    @staticmethod
    def Q(net, obs, a):
        return net(torch.cat([obs, a], dim=1)).squeeze(1)           # obs, then action; (B,)

    def update(self, batch, eps=None):
        obs, act, rew, obs2, done = (torch.as_tensor(x) for x in batch)
        with torch.no_grad():                                       # 1. y is a constant
            a2 = self.mu(self.actor_targ, obs2)
            if eps is not None:                                     # TD3: smoothing, clip, min
                clip = self.noise_clip * self.half
                noise = torch.clamp(self.target_noise * self.half * torch.as_tensor(eps),
                                    -clip, clip)
                low, high = self.mid - self.half, self.mid + self.half
                self.n_clipped[0] += int((noise != self.target_noise * self.half
                                          * torch.as_tensor(eps)).sum())
                self.n_clipped[1] += int(((a2 + noise < low) | (a2 + noise > high)).sum())
                a2 = torch.clamp(a2 + noise, low, high)
            q_targ = torch.stack([self.Q(targ, obs2, a2) for targ in self.critic_targs])
            y = rew + self.gamma * (1 - done) * q_targ.min(dim=0).values
        qs = [self.Q(critic, obs, act) for critic in self.critics]  # 2. critic step(s)
        loss_q = sum(((q - y) ** 2).mean() for q in qs)
        self.q_optim.zero_grad()
        loss_q.backward()
        self.q_optim.step()
        self.n_updates += 1
        loss_pi = float("nan")
        actor_step = self.n_updates % self.policy_delay == 0
        if actor_step:                                              # 3. actor step on Q1, the
            for critic in self.critics:                             # updated critics constant
                critic.requires_grad_(False)
            loss = -self.Q(self.critics[0], obs, self.mu(self.actor, obs)).mean()
            self.pi_optim.zero_grad()
            loss.backward()
            self.pi_optim.step()
            for critic in self.critics:
                critic.requires_grad_(True)
            loss_pi = loss.item()
            with torch.no_grad():                                   # 4. polyak; rho weights
                nets = zip((self.actor, *self.critics), (self.actor_targ, *self.critic_targs))
                for net, targ in nets:                              # the target
                    for p, p_targ in zip(net.parameters(), targ.parameters()):
                        p_targ.mul_(self.rho).add_(p, alpha=1 - self.rho)
        q1 = qs[0].detach()
        info = {"loss_q": loss_q.item(), "loss_pi": loss_pi, "q_mean": q1.mean().item(),
                "q_std": q1.std(correction=0).item()}
        return info, actor_step

    def arrays(self, actor_step):
        """name -> array in numddpg's layout, named as the agent's state_dict() names them; the
        gradients of this update as gradients() names them (the actor's only after its step)."""
        out = {"actor": flat_of(self.actor), "actor_targ": flat_of(self.actor_targ),
               "pi_m": flat_of(self.actor, "exp_avg", self.pi_optim),
               "pi_v": flat_of(self.actor, "exp_avg_sq", self.pi_optim)}
        if actor_step:
            out["grad actor"] = flat_of(self.actor, "grad")
        for n, (critic, targ) in enumerate(zip(self.critics, self.critic_targs), start=1):
            c = "" if n == 1 else str(n)
            out[f"critic{c}"], out[f"critic{c}_targ"] = flat_of(critic), flat_of(targ)
            out[f"q{c}_m"] = flat_of(critic, "exp_avg", self.q_optim)
            out[f"q{c}_v"] = flat_of(critic, "exp_avg_sq", self.q_optim)
            out[f"grad critic{c}"] = flat_of(critic, "grad")
        return out


# --- numddpg's side ----------------------------------------------------------------------------

def next_eps(agent, B):
    """The smoothing draws eps (B, act) the agent's next ``update`` of B rows will make: row-major
    numddpg.kernels.rng.normal draws from a copy of its generator state (numddpg.kernels.update.td3_updates)."""
    state = agent.rng_state.copy()
    return np.array([[nrng.normal(state) for _ in range(agent.act_dim)] for _ in range(B)])


def agent_arrays(agent):
    out = {k: v for k, v in agent.state_dict().items() if k not in ("rng_state", "counters")}
    out.update({f"grad {name}": g for name, g in agent.gradients().items()})
    return out


def assert_same(agent, twin, info, info_t, actor_step, n):
    ours, theirs = agent_arrays(agent), twin.arrays(actor_step)
    expected = set(ours) - ({"grad actor"} if not actor_step else set())
    assert set(theirs) == expected, (sorted(theirs), sorted(expected))
    for name, want in theirs.items():
        scale = np.abs(want).max()
        if scale == 0:                      # TD3's actor moments before its first step
            np.testing.assert_array_equal(ours[name], want, err_msg=f"{name} after update {n}")
            continue
        np.testing.assert_allclose(ours[name], want, rtol=0, atol=TORCH * scale,
                                   err_msg=f"{name} after update {n}")
    for key in ("loss_q", "q_mean", "q_std"):
        assert info[key] == pytest.approx(info_t[key], rel=TORCH, abs=1e-15), (key, n)
    if actor_step:
        assert info["loss_pi"] == pytest.approx(info_t["loss_pi"], rel=TORCH, abs=1e-15), n
    else:
        assert np.isnan(info["loss_pi"]) and np.isnan(info_t["loss_pi"]), n


# --- the tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("chunks", [1, 3])
def test_ddpg_updates_equal_torch(chunks, rng):
    """Six DDPG updates; every array after each, against autograd and torch.optim.Adam."""
    agent = small_agent(DDPGAgent, hidden=(16, 8), seed=5, chunks=chunks)
    twin = TorchDDPG(agent)
    for n in range(1, N_UPDATES + 1):
        batch = random_batch(rng, agent, B)
        info = agent.update(*batch)
        info_t, actor_step = twin.update(batch)
        assert actor_step
        assert_same(agent, twin, info, info_t, actor_step, n)
    assert agent.pi_optim.t == agent.q_optim.t == N_UPDATES


@pytest.mark.parametrize("chunks", [1, 3])
@pytest.mark.parametrize("target_noise, noise_clip", [(0.5, 0.3), (1.0, 2.0)])
def test_td3_updates_equal_torch(chunks, target_noise, noise_clip, rng):
    """Six TD3 updates with a policy delay of 2 and smoothing noise that the noise clip bounds
    (both settings) and that pushes target actions past the action bounds (the second: noise
    up to 2 half-ranges)."""
    kw = dict(target_noise=target_noise, noise_clip=noise_clip, policy_delay=2)
    agent = small_agent(TD3Agent, hidden=(16, 8), seed=6, chunks=chunks, **kw)
    twin = TorchDDPG(agent, n_critics=2, **kw)
    for n in range(1, N_UPDATES + 1):
        batch = random_batch(rng, agent, B)
        eps = next_eps(agent, B)
        info = agent.update(*batch)
        info_t, actor_step = twin.update(batch, eps)
        assert actor_step == (n % 2 == 0)
        assert_same(agent, twin, info, info_t, actor_step, n)
    noise_clipped, bounds_clipped = twin.n_clipped          # else the test would not see them
    assert noise_clipped > 0, "the noise clip was never active"
    assert bounds_clipped > 0 or noise_clip < 1, "the action bounds never clipped"
    assert (agent.pi_optim.t, agent.q_optim.t, agent.n_updates) == (N_UPDATES // 2, N_UPDATES,
                                                                    N_UPDATES)


def test_a_wrong_update_fails_the_comparison(rng):
    """The comparison can fail: a TD3 twin without the smoothing noise differs beyond TORCH."""
    agent = small_agent(TD3Agent, hidden=(16, 8), seed=6, target_noise=0.5, noise_clip=0.3)
    twin = TorchDDPG(agent, n_critics=2, target_noise=0.5, noise_clip=0.3, policy_delay=2)
    batch = random_batch(rng, agent, B)
    info = agent.update(*batch)
    info_t, actor_step = twin.update(batch, np.zeros((B, agent.act_dim)))
    with pytest.raises(AssertionError):
        assert_same(agent, twin, info, info_t, actor_step, 1)


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
@pytest.mark.parametrize("optimizer, kwargs, options", [
    ("AdamW", dict(weight_decay=0.2), dict(weight_decay=0.2)),
    ("Adam", dict(weight_decay=0.2), dict(weight_decay=0.2, decoupled_weight_decay=False)),
    ("AdamW", dict(betas=(0.5, 0.99), eps=1e-4),             # AdamW's default decay, 1e-2
     dict(weight_decay=1e-2, adam_beta1=0.5, adam_beta2=0.99, adam_eps=1e-4)),
])
def test_adam_options_equal_torchs_optimizers(algo, optimizer, kwargs, options, rng):
    """torch.optim.AdamW and Adam(weight_decay) with other betas and eps, against the agent
    with the hyperparameters numddpg.sb3 maps them to: every array after each of six updates
    (TORCH), learning rates changed between updates as a scheduler (or SB3's schedule) does.
    (The kinds swapped, AdamW's decay against Adam's L2 term, fail: measured.)"""
    td3 = dict(target_noise=0.5, noise_clip=0.3, policy_delay=2) if algo == "td3" else {}
    cls = TD3Agent if algo == "td3" else DDPGAgent
    agent = small_agent(cls, hidden=(16, 8), seed=7, chunks=2, **td3, **options)
    twin = TorchDDPG(agent, n_critics=agent.n_critics, optimizer=getattr(torch.optim, optimizer),
                     **td3, **kwargs)
    for n in range(1, N_UPDATES + 1):
        lr = 1e-3 * (1 - n / 10)                             # a decaying learning rate
        agent.set_learning_rates(lr, 2 * lr)
        for group in twin.pi_optim.param_groups:
            group["lr"] = lr
        for group in twin.q_optim.param_groups:
            group["lr"] = 2 * lr
        batch = random_batch(rng, agent, B)
        eps = next_eps(agent, B) if td3 else None
        info = agent.update(*batch)
        info_t, actor_step = twin.update(batch, eps)
        assert_same(agent, twin, info, info_t, actor_step, n)
