"""The RL Baselines3 Zoo (rl_zoo3) with numddpg's DDPG and TD3 in place of SB3's.

    python -m numddpg.sb3.zoo train --algo td3 --env Pendulum-v1 --seed 0 -f logs
    python -m numddpg.sb3.zoo enjoy --algo td3 --env Pendulum-v1 -f logs --no-render -n 5000
    python -m numddpg.sb3.zoo train --algo td3 --env Pendulum-v1 -f logs \
        -i logs/td3/Pendulum-v1_1/Pendulum-v1.zip              # continue training
    python -m numddpg.sb3.zoo train --algo td3 --env Pendulum-v1 -f logs -optimize \
        --n-trials 20 --n-jobs 1                                 # Optuna's search

The first word names the Zoo's script (``train`` or ``enjoy``, as ``python -m rl_zoo3.cli``);
the rest are the Zoo's own arguments, read by its own scripts.  In this process only,
rl_zoo3.utils.ALGOS maps "ddpg" and "td3" to ZooDDPG and ZooTD3 (numddpg.sb3's DDPG and TD3
under the Zoo's file names); the Zoo's hyperparams/*.yml, env making, EvalCallback and
logging are its own.  Needs rl_zoo3 (the ``zoo`` extra), which needs stable-baselines3 and
torch; numddpg's classes never use either.

The Zoo's files keep its names (``<env>.zip``, ``best_model.zip``, ``rl_model_<n>_steps.zip``)
but hold numddpg's safe format (an npz, itself a zip archive of arrays and JSON; never a
pickle): SB3 cannot read them, ZooDDPG / ZooTD3 (and numddpg.sb3's DDPG / TD3) can.

``-i/--trained-agent`` loads the file with the Zoo's hyperparameters, as SB3's load does
(numddpg.sb3.model: those that differ from the saved ones make a model that takes the file's
networks, Adam states, counters and, at an unchanged buffer_size, its replay buffer).
``-optimize`` runs the Zoo's Optuna search (the ``tune`` extra installs Optuna): its DDPG/TD3
sampler draws gamma, learning rate, batch size, train_freq, tau, noise and net_arch, all of
which numddpg.sb3 takes; a trial whose values it refused would be pruned by the Zoo, which
prints the reason.
"""
import random
import sys

import numpy as np

from .model import DDPG, TD3

SCRIPTS = ("train", "enjoy")
NUMDDPG_ALGOS = ("ddpg", "td3")
# custom_objects the Zoo's enjoy passes to patch schedules in SB3 pickles of older Pythons;
# numddpg's files hold no such objects
ENJOY_PATCHES = frozenset({"learning_rate", "lr_schedule", "clip_range"})


class ZooFiles:
    """The keywords of the Zoo's enjoy's load() (the Zoo's file names, ".zip", are numddpg.sb3's
    own)."""

    @classmethod
    def load(cls, path, env=None, device="auto", custom_objects=None, seed=None,
             buffer_size=None, **kwargs):
        """numddpg.sb3's load, as the Zoo calls it.

        Its enjoy (no env, a dummy ``buffer_size``, ``custom_objects`` naming only schedules
        of old pickles, ENJOY_PATCHES: nothing in the file to replace) gets a model to act:
        without a replay buffer, so learn() refuses until one is set.  Its ``-i`` (an env and
        the hyperparameters) gets SB3's load: the model continued with them.  ``seed`` is the
        model's ``seed`` attribute, as SB3's, and seeds Python's and NumPy's global generators
        (SB3's set_random_seed; the model's own stay as saved)."""
        patches = set(custom_objects or {})
        if patches - ENJOY_PATCHES:
            raise ValueError(f"custom_objects={custom_objects!r}: numddpg's files hold no Python "
                             "objects to replace; only the Zoo's schedule patches "
                             f"{sorted(ENJOY_PATCHES)} are taken (with nothing to patch)")
        enjoy = env is None and buffer_size is not None
        if buffer_size is not None and not enjoy:
            kwargs["buffer_size"] = buffer_size
        if seed is not None:
            kwargs["seed"] = seed
        model = super().load(path, env=env, device=device, **kwargs)
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed)
        if patches or enjoy:
            model.replay_buffer = None
        return model


class ZooDDPG(ZooFiles, DDPG):
    """numddpg.sb3.DDPG with the Zoo's file names."""


class ZooTD3(ZooFiles, TD3):
    """numddpg.sb3.TD3 with the Zoo's file names."""


def register():
    """Map "ddpg" and "td3" in rl_zoo3's ALGOS (the dict its scripts read) to numddpg's."""
    from rl_zoo3 import utils
    utils.ALGOS.update(ddpg=ZooDDPG, td3=ZooTD3)


def main(argv=None):
    """Run the Zoo's ``train`` or ``enjoy`` on ``argv`` (default: the command line)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in SCRIPTS:
        sys.exit(f"usage: python -m numddpg.sb3.zoo {{{','.join(SCRIPTS)}}} [rl_zoo3's "
                 "arguments, e.g. --algo td3 --env Pendulum-v1]")
    script, rest = argv[0], argv[1:]
    try:
        import rl_zoo3  # noqa: F401
    except ImportError:
        sys.exit("numddpg.sb3.zoo needs rl_zoo3: pip install 'numddpg[zoo]' (install the CPU "
                 "torch wheel first: pip install torch==2.13.0)")
    register()
    if script == "train":
        from rl_zoo3.train import train as run
    else:
        from rl_zoo3.enjoy import enjoy as run
    saved = sys.argv
    sys.argv = [f"numddpg.sb3.zoo {script}", *rest]
    try:
        run()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
