"""``numddpg gradcheck``: the gradient checks of numddpg.kernels.gradcheck on a random float64
agent and minibatch, printed as a table with one row per weight and bias tensor.
"""
import sys

import numpy as np

from ..engine.agents import DDPGAgent
from ..kernels.gradcheck import KINK_MARGIN, actor_objective, check_objective, critic_objective

HELP = ("Check the hand-written gradients of the DDPG critic loss (each critic's term) and actor "
        "objective against centred finite differences in float64, one row per weight and bias "
        "tensor.")


def add_arguments(parser):
    parser.add_argument("--obs-dim", type=int, default=3, help="observation size (default 3)")
    parser.add_argument("--act-dim", type=int, default=2, help="action size (default 2)")
    parser.add_argument("--hidden", type=int, nargs="*", default=[16, 16],
                        help="hidden widths of both networks (default 16 16; none: --hidden "
                             "alone, linear networks)")
    parser.add_argument("--critics", type=int, default=1,
                        help="critics, each checked (default 1)")
    parser.add_argument("--batch", type=int, default=8, help="minibatch rows (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of agent and batch (default 0)")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="bound on the relative error of every row (default 1e-6)")
    parser.add_argument("--action-l2", type=float, default=0.0,
                        help="the actor's action penalty in J (default 0; the HER papers' 1.0)")
    parser.add_argument("--clip-return", action="store_true",
                        help="clip the critic's target to [-1 / (1 - gamma), 0]")
    parser.set_defaults(func=run)


def random_setup(obs_dim, act_dim, hidden, batch, seed, tries=20, n_critics=1, action_l2=0.0,
                 clip_return=False):
    """A float64 DDPGAgent of ``n_critics`` critics with asymmetric bounds (and the given action
    penalty and clip of the target), 3 warm-up updates (so the targets differ from the online
    networks and Adam has moved) and a random minibatch.

    The minibatch is redrawn (at most ``tries`` times) until no hidden pre-activation of either
    loss lies within KINK_MARGIN of the ReLU kink.  Returns (agent, batch, redraws).
    """
    rng = np.random.default_rng(seed)
    low = -1.0 - rng.uniform(0.0, 1.0, act_dim)           # in [-2, -1]
    high = 0.5 + rng.uniform(0.0, 2.0, act_dim)           # in [0.5, 2.5]
    agent = DDPGAgent(obs_dim, act_dim, low, high, hidden_sizes=hidden, polyak=0.9,
                      dtype=np.float64, seed=seed, n_critics=n_critics, action_l2=action_l2,
                      clip_return=clip_return)

    def draw():
        return (rng.standard_normal((batch, obs_dim)),
                rng.uniform(low, high, (batch, act_dim)),
                rng.standard_normal(batch),
                rng.standard_normal((batch, obs_dim)),
                (rng.uniform(size=batch) < 0.25).astype(np.float64))

    for _ in range(3):
        agent.update(*draw())
    for redraws in range(tries):
        mb = draw()
        if min(obj.margin(obj.x0) for obj in objectives(agent, mb)) > KINK_MARGIN:
            break
    return agent, mb, redraws


def objectives(agent, batch):
    """Every critic's objective, then the actor's."""
    return [*(critic_objective(agent, batch, k) for k in range(agent.n_critics)),
            actor_objective(agent, batch)]


def run(args):
    """Print the gradient-check table; return 0 if every row is within its bound, 1 if any row
    fails, 2 if the arguments are invalid."""
    h = 1e-6
    try:
        agent, batch, redraws = random_setup(args.obs_dim, args.act_dim, args.hidden, args.batch,
                                             args.seed, n_critics=args.critics,
                                             action_l2=args.action_l2,
                                             clip_return=args.clip_return)
    except ValueError as err:                 # bad sizes: say which, no traceback
        print(f"numddpg gradcheck: {err}", file=sys.stderr)
        return 2
    print(f"numddpg gradcheck: obs_dim={args.obs_dim} act_dim={args.act_dim} "
          f"hidden={list(args.hidden)} critics={args.critics} batch={args.batch} "
          f"seed={args.seed} action_l2={args.action_l2:g}"
          f"{' clip_return' if args.clip_return else ''} float64, centred differences "
          f"h={h:g} (directional: eps=1e-5)")
    print(f"  act_low={np.round(agent.act_low, 3)} act_high={np.round(agent.act_high, 3)}; "
          f"minibatch redrawn {redraws} time(s) to keep ReLU inputs >= {KINK_MARGIN:g} from 0")
    rows = []
    for obj in objectives(agent, batch):
        m = obj.margin(obj.x0)
        note = "" if m > KINK_MARGIN else "  (closer than 1e-4: a FAIL may be a kink, not a bug)"
        print(f"  {obj.loss:<3} = {obj.f(obj.x0):<10.6g} ({obj.net}); nearest ReLU input to 0: "
              f"{m:.2e}{note}")
        rows += check_objective(obj, h=h, tol=args.tol)
    header = (f"{'loss':<4} {'tensor':<26} {'shape':<10} {'max|analytic|':>13} "
              f"{'rel error':>10} {'bound':>8}  result")
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])
        print(f"{r['loss']:<4} {r['tensor']:<26} {shape:<10} {r['max_abs']:>13.3e} "
              f"{r['rel_error']:>10.2e} {r['bound']:>8.0e}  {'OK' if r['ok'] else 'FAIL'}")
    n_fail = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - n_fail}/{len(rows)} rows within bound" + (f"; {n_fail} FAIL" if n_fail
                                                                   else ""))
    return 0 if n_fail == 0 else 1
