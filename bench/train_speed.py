"""Whole-training throughput: env steps per second of DDPG training, numddpg vs SBX vs SB3.

    python bench/train_speed.py [--envs HalfCheetah-v5 Pendulum-v1] [--steps 3000] [--repeats 3]
                                [--warmup 1500] [--threads 1] [--contenders numddpg sbx sb3]

Three contenders train DDPG with identical settings in one process: numddpg.DDPG (Numba/NumPy),
sbx.DDPG (JAX) and stable_baselines3.DDPG (PyTorch).  Two settings (--envs picks them by env):
  HalfCheetah-v5 1:1 b256   (256, 256) actor and critic, batch 256, one update after every env
                            step, gamma 0.99, tau 0.005, lr 1e-3 (both nets), Gaussian action
                            noise 0.1, replay 100k, 1000 random steps before updates start
  Pendulum-v1 preset        numddpg's Pendulum-v1 preset (numddpg.engine.presets): (64, 64), batch 64,
                            50 updates every 50 steps, gamma 0.98; the rest as above
Mapping: numddpg update_every=K <-> SB3/SBX train_freq=K, gradient_steps=K; polyak = 1 - tau;
pi_lr = q_lr <-> learning_rate (and SBX's qf_learning_rate); act_noise <-> NormalActionNoise(0,
sigma) (both in half-range units); start_steps = update_after <-> learning_starts; hidden_sizes
<-> policy_kwargs net_arch.  numddpg trains without test episodes or logging; SB3/SBX with
verbose 0, no eval callback and no progress bar.

Each model first runs a warm-up learn() of --warmup steps (past the random phase, so JIT compile
and the first updates are excluded; its time, model construction included, is printed as
"warm-up s"); then --repeats timed
learn() calls of --steps env steps each continue training, the contenders alternating repeat by
repeat (the order rotates).  Printed: the median steps/s (with the range over repeats) and the
ratios numddpg/SBX and numddpg/SB3.  Threads: by default torch uses os.cpu_count() threads, JAX
its default pool and numddpg its calibrated chunks (numddpg.kernels.threads); --threads 1 pins the whole
process to one CPU before numpy, torch or JAX load (their pools then see one CPU: XLA_FLAGS does
not limit XLA's pool, bench/jax_ddpg.py says why) and gives numddpg one chunk.
"""
import argparse
import importlib
import os
import statistics
import sys
import time

import gymnasium as gym
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numddpg  # noqa: E402  (imports neither jax nor torch)
from numddpg.engine.presets import preset_for  # noqa: E402
from numddpg.kernels.threads import describe_cpu  # noqa: E402

CONTENDERS = ("numddpg", "sbx", "sb3")


def pendulum_preset():
    """numddpg's Pendulum-v1 preset on top of its defaults, in the neutral keys of SETTINGS."""
    hp = {k: default for k, (default, _) in numddpg.DDPG.hyperparameter_table().items()}
    hp.update(preset_for("Pendulum-v1"))
    assert hp["pi_lr"] == hp["q_lr"] and hp["noise"] == "gaussian"   # SB3 has one lr, Gaussian
    assert hp["start_steps"] == hp["update_after"]                   # SB3 has learning_starts
    return dict(env="Pendulum-v1", hidden=tuple(hp["hidden_sizes"]), batch=hp["batch_size"],
                every=hp["update_every"], gamma=hp["gamma"], tau=round(1 - hp["polyak"], 10),
                lr=hp["pi_lr"], noise=hp["act_noise"], replay=hp["replay_size"],
                start=hp["start_steps"])


SETTINGS = {
    "HalfCheetah-v5 1:1 b256": dict(env="HalfCheetah-v5", hidden=(256, 256), batch=256, every=1,
                                    gamma=0.99, tau=0.005, lr=1e-3, noise=0.1, replay=100_000,
                                    start=1000),
    "Pendulum-v1 preset": pendulum_preset(),
}


# --- the contenders: make(setting, threads) -> model; learn(model, n); steps(model) -----------

class Numddpg:
    name, version = "numddpg", numddpg.__version__

    def make(self, s, threads):
        return numddpg.DDPG(s["env"], preset="none", log=False, seed=0, hidden_sizes=s["hidden"],
                            batch_size=s["batch"], update_every=s["every"], gamma=s["gamma"],
                            polyak=1 - s["tau"], pi_lr=s["lr"], q_lr=s["lr"],
                            act_noise=s["noise"], replay_size=s["replay"],
                            start_steps=s["start"], update_after=s["start"],
                            steps_per_epoch=10**9, num_test_episodes=0,
                            chunks=1 if threads == 1 else None)

    def learn(self, model, n):
        model.learn(n, progress_bar=False)

    def steps(self, model):
        return model.t


class SB3:
    name, module = "sb3", "stable_baselines3"

    def __init__(self):
        from stable_baselines3.common.noise import NormalActionNoise
        lib = importlib.import_module(self.module)
        self.Noise, self.DDPG, self.version = NormalActionNoise, lib.DDPG, lib.__version__

    def kwargs(self, s, act_dim):
        return dict(learning_rate=s["lr"], buffer_size=s["replay"], learning_starts=s["start"],
                    batch_size=s["batch"], tau=s["tau"], gamma=s["gamma"],
                    train_freq=s["every"], gradient_steps=s["every"],
                    action_noise=self.Noise(np.zeros(act_dim), s["noise"] * np.ones(act_dim)),
                    policy_kwargs=dict(net_arch=list(s["hidden"])), verbose=0, seed=0,
                    device="cpu")

    def make(self, s, threads):
        env = gym.make(s["env"])
        return self.DDPG("MlpPolicy", env, **self.kwargs(s, env.action_space.shape[0]))

    def learn(self, model, n):
        model.learn(n, reset_num_timesteps=False, progress_bar=False)   # continue (0 at first)

    def steps(self, model):
        return model.num_timesteps


class SBX(SB3):
    name, module = "sbx", "sbx"

    def __init__(self):
        super().__init__()
        import jax
        self.version += f" (jax {jax.__version__}, {jax.default_backend()})"

    def kwargs(self, s, act_dim):
        return dict(super().kwargs(s, act_dim), qf_learning_rate=s["lr"])   # actor: learning_rate


def load(name):
    """The contender object, or None (with a printed note) if its library is not installed."""
    try:
        return {"numddpg": Numddpg, "sbx": SBX, "sb3": SB3}[name]()
    except ImportError as e:
        print(f"note: skipping {name}: {e}")
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "Pendulum-v1"])
    ap.add_argument("--steps", type=int, default=3000, help="timed env steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1500, help="untimed first learn() steps")
    ap.add_argument("--threads", type=int, choices=[1], default=None,
                    help="1: one thread for torch, numddpg's BLAS and XLA (default: all/auto)")
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    args = ap.parse_args(argv)
    if args.threads == 1:                        # before torch or jax builds a thread pool
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    print(describe_cpu())
    contenders = [c for c in map(load, dict.fromkeys(args.contenders)) if c is not None]
    if any(c.name != "numddpg" for c in contenders):
        import torch
        torch.set_num_threads(args.threads or os.cpu_count())
        print(f"torch {torch.__version__}: {torch.get_num_threads()} threads; process on CPUs "
              f"{sorted(os.sched_getaffinity(0))}")
    print("versions: " + ", ".join(f"{c.name} {c.version}" for c in contenders))
    settings = {k: s for k, s in SETTINGS.items() if s["env"] in args.envs}
    for label, s in settings.items():
        print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in s.items()))
    print(f"median of {args.repeats} x {args.steps} env steps after a {args.warmup}-step warm-up")
    print(f"{'setting':24} {'contender':9} {'env steps/s':>11} {'(min-max)':>13} {'warm-up s':>9}")

    for label, s in settings.items():
        if args.warmup <= s["start"]:
            print(f"note: --warmup {args.warmup} does not pass learning_starts {s['start']}: "
                  "compile and first updates fall into the timed repeats")
        models, warm = {}, {}
        for c in contenders:
            t = time.perf_counter()
            models[c.name] = c.make(s, args.threads)
            c.learn(models[c.name], args.warmup)
            warm[c.name] = time.perf_counter() - t
        sps = {c.name: [] for c in contenders}
        for r in range(args.repeats):
            k = r % len(contenders)
            for c in contenders[k:] + contenders[:k]:
                model, before = models[c.name], c.steps(models[c.name])
                t = time.perf_counter()
                c.learn(model, args.steps)
                sps[c.name].append((c.steps(model) - before) / (time.perf_counter() - t))
        med = {name: statistics.median(v) for name, v in sps.items()}
        for c in contenders:
            v = sps[c.name]
            print(f"{label:24} {c.name:9} {med[c.name]:11.0f} {min(v):6.0f}-{max(v):<6.0f} "
                  f"{warm[c.name]:9.1f}", flush=True)
        if "numddpg" in med:
            ratios = [f"numddpg/{o.upper()} {med['numddpg'] / med[o]:.2f}x"
                      for o in ("sbx", "sb3") if o in med]
            m = models["numddpg"]
            plan = f"numddpg chunks {m.chunks_used} ({m.threads_record['source']})"
            print(f"{'':24} {', '.join(ratios + [plan])}", flush=True)


if __name__ == "__main__":
    main()
