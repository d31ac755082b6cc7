"""The NaN guard: training stops at the first non-finite loss, Q statistic, parameter, target,
Adam moment or gradient, naming it, before a checkpoint could keep it.

After every burst of updates it reads the burst's statistics (K, 4); every FULL_SCAN_UPDATES
updates, before every checkpoint and whenever a statistic is bad, it scans every array of the
agent too.  The statistics alone catch a divergence at the next update: a non-finite weight,
target weight or moment makes that update's Q values and losses non-finite.  The full scan
names the array, and keeps the per-step cost of update_every=1 small (scanning ~10^6 numbers
after every update would cost ~0.3 ms).
"""
import numpy as np

from ..engine.agents import N_STATS, ST_LOSS_PI

STAT_NAMES = ("loss_q", "loss_pi", "q_mean", "q_std")    # columns of update_burst's statistics
assert len(STAT_NAMES) == N_STATS

# The guard scans every array at least once per this many updates.
FULL_SCAN_UPDATES = 1000


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinite loss, gradient or parameter (it stops there)."""


def check_finite(agent, stats, state, checkpoint_path, full=False):
    """The guard after a burst of updates with statistics ``stats`` (K, 4) (``full``: scan
    every array whatever the count).  Raises NonFiniteError, and marks ``state`` (the
    RunState) diverged, naming the first non-finite number and the checkpoint that is kept
    (``checkpoint_path``, or None without a run directory)."""
    ok = np.isfinite(stats)
    if "policy_delay" in agent.hyperparameter_table:   # a delayed actor (TD3): loss_pi is
        # NaN by design on the critic-only updates
        ok[:, ST_LOSS_PI] |= np.isnan(stats[:, ST_LOSS_PI])
    state.unscanned += len(stats)
    # A NaN in the actor's parameters shows only in loss_pi (the critic's update uses the
    # target actor), and TD3's loss_pi is NaN by design on critic-only updates: so the
    # actor's parameters are checked after every burst (np.isfinite(...).all(): ~15 us for
    # (256, 256)'s 72 k parameters, where a float64 sum took ~60-170 us).
    actor_ok = bool(np.isfinite(agent.actor.params).all())
    if ok.all() and actor_ok and not full and state.unscanned < FULL_SCAN_UPDATES:
        return
    state.unscanned = 0
    what = None
    if not ok.all():
        k, c = (int(i) for i in np.argwhere(~ok)[0])
        what = (f"{STAT_NAMES[c]} = {stats[k, c]} (update {k + 1} of the {len(stats)} in "
                "this burst)")
    else:
        for name, arr in guarded_arrays(agent):
            if not np.isfinite(arr).all():
                i = int(np.argwhere(~np.isfinite(arr))[0, 0])
                what = f"{name} (element {i} = {arr[i]})"
                break
    if what is None:
        return
    state.diverged = True
    kept = (f"the last good checkpoint, {checkpoint_path} (env step {state.checkpoint_t}), is "
            "kept as it was" if checkpoint_path is not None and state.checkpoint_t is not None
            else "no checkpoint was written")
    raise NonFiniteError(
        f"training diverged at env step {state.t} (critic update {agent.q_optim.t}): "
        f"non-finite {what}; {kept}. Lower pi_lr/q_lr, or scale the rewards down "
        "(e.g. gymnasium.wrappers.TransformReward).")


def guarded_arrays(agent):
    """(name, array) of everything the NaN guard watches: the agent's state and gradients."""
    for name, arr in agent._state_arrays().items():
        if arr.dtype.kind == "f":
            kind = "Adam moment" if name[-2:] in ("_m", "_v") else "parameter vector"
            yield f"{kind} {name!r}", arr
    for name in ("_g_pi", "_g_q", "_g_q2"):
        if hasattr(agent, name):
            yield f"gradient {name[1:]!r}", getattr(agent, name)
