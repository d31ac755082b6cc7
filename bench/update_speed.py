"""Microseconds per DDPG update: numddpg's fused burst vs the BLAS floor vs PyTorch eager.

    python bench/update_speed.py [--threads auto|1|2|both] [--rounds 9] [--no-torch]

For each config (obs, act, hidden, batch), float32, minibatches sampled from a 10,000-row
replay buffer, the script alternates, round by round in one process:
  numddpg   one ``update_burst`` call of K updates (sampling, target, critic, actor, Adam,
            polyak, all jitted) -> time per update
  floor     the same update's matrix products alone, through numpy, back to back (the shapes
            and transposes the kernels use) — the practical BLAS floor
  torch     bench/torch_ddpg.py, the same update in PyTorch eager mode (when torch is installed)
and prints medians over the rounds, FLOPs per update and achieved GFLOP/s.  The first call's
time (Numba compile, or loading its cache) is printed too.  REFERENCE.md §4's PyTorch and JAX
figures were measured on this machine; the `torch` column re-measures PyTorch here, now.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from numddpg import DDPGAgent  # noqa: E402
from numddpg.threads import auto_blas_threads, limit_blas_threads  # noqa: E402

CONFIGS = [(3, 1, (64, 64), 64), (17, 6, (256, 256), 100), (17, 6, (256, 256), 256),
           (17, 6, (400, 300), 256)]
# shared/REFERENCE.md §4 (us per update on this machine) and issue #4's targets
PUBLISHED = {CONFIGS[0]: (1440, 238, 80), CONFIGS[1]: (3030, 1800, 1200),
             CONFIGS[2]: (4330, 3460, 2700), CONFIGS[3]: (6320, 5770, 4900)}


class Replay:
    """A filled float32 replay buffer, in the attribute layout update_burst reads."""

    def __init__(self, obs_dim, act_dim, n, seed=0):
        rng = np.random.default_rng(seed)
        self.obs = rng.standard_normal((n, obs_dim), dtype=np.float32)
        self.act = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
        self.rew = rng.standard_normal(n, dtype=np.float32)
        self.obs2 = rng.standard_normal((n, obs_dim), dtype=np.float32)
        self.done = (rng.random(n) < 0.01).astype(np.float32)
        self.size = n


def mlp_gemms(sizes, B, forward=True, grad=True, dx_cols=0):
    """(m, k, n, transpose_a, transpose_b) of each gemm in mlp_forward / mlp_backward."""
    out = []
    L = len(sizes) - 1
    if forward:
        out += [(B, sizes[l], sizes[l + 1], False, False) for l in range(L)]
    else:
        for l in range(L - 1, -1, -1):
            if grad:
                out.append((sizes[l], B, sizes[l + 1], True, False))       # dW = h^T delta
            if l > 0:
                out.append((B, sizes[l + 1], sizes[l], False, True))       # dh = delta W^T
            elif dx_cols:
                out.append((B, sizes[1], dx_cols, False, True))            # dx[:, c:]
    return out


def update_gemms(o, a, hidden, B):
    """Every matrix product of one DDPG update (ddpg_update_kernel's order)."""
    pi, q = [o, *hidden, a], [o + a, *hidden, 1]
    return (mlp_gemms(pi, B) + mlp_gemms(q, B)                     # target
            + mlp_gemms(q, B) + mlp_gemms(q, B, forward=False)      # critic step
            + mlp_gemms(pi, B) + mlp_gemms(q, B)                    # actor step forward
            + mlp_gemms(q, B, forward=False, grad=False, dx_cols=a)
            + mlp_gemms(pi, B, forward=False))


def flops(gemms):
    return sum(2 * m * k * n for m, k, n, _, _ in gemms)


def floor_runner(gemms, K):
    rng = np.random.default_rng(1)
    ops = []
    for m, k, n, ta, tb in gemms:
        A = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        Bm = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        ops.append((A.T if ta else A, Bm.T if tb else Bm, np.empty((m, n), np.float32)))

    def run():
        for _ in range(K):
            for A, Bm, C in ops:
                np.dot(A, Bm, out=C)
    return run


def torch_runner(cfg, K, threads):
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_ddpg import TorchDDPG
    torch.set_num_threads(threads)
    o, a, hidden, B = cfg
    rep = Replay(o, a, 10_000)
    data = [torch.from_numpy(x) for x in (rep.obs, rep.act, rep.rew, rep.obs2, rep.done)]
    agent = TorchDDPG(o, a, hidden)
    return lambda: agent.burst(data, B, K)


# Idle BLAS/OpenMP worker threads spin for up to ~0.1 s after a call before they sleep: numpy's
# OpenBLAS, SciPy's OpenBLAS (the one Numba calls) and torch's OpenMP are three separate pools,
# so a contender timed right after another would share the cores with the other's spinning
# threads.  Each timed block therefore starts after a pause that lets every pool fall asleep.
SETTLE_S = 0.25


def timed(fn):
    time.sleep(SETTLE_S)
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_config(cfg, threads, rounds, use_torch):
    o, a, hidden, B = cfg
    K = 50 if hidden[0] < 128 else 10
    limiter = limit_blas_threads(threads)
    agent = DDPGAgent(o, a, -1.0, 1.0, hidden_sizes=hidden, seed=0)
    rep = Replay(o, a, 10_000)
    first = timed(lambda: agent.update_burst(rep, B, 1))
    runners = {"numddpg": lambda: agent.update_burst(rep, B, K),
               "floor": floor_runner(update_gemms(o, a, hidden, B), K)}
    tr = torch_runner(cfg, K, threads) if use_torch else None
    if tr is not None:
        runners["torch"] = tr
    for fn in runners.values():
        fn()                                   # warm-up
    times = {name: [] for name in runners}
    for _ in range(rounds):                    # alternate A/B/C each round
        for name, fn in runners.items():
            times[name].append(timed(fn) / K)
    limiter.restore_original_limits()
    med = {name: float(np.median(v)) * 1e6 for name, v in times.items()}
    return med, first, flops(update_gemms(o, a, hidden, B))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="auto", help="BLAS (and torch) threads: auto|1|2|both")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--config", type=int, nargs="*", help="indices into CONFIGS to run")
    args = ap.parse_args(argv)
    configs = [CONFIGS[i] for i in args.config] if args.config else CONFIGS
    print(f"numddpg update speed, float32, {os.cpu_count()} cores, medians of {args.rounds} "
          "alternating rounds")
    head = (f"{'config (obs,act,hidden,batch)':32} {'thr':>3} {'MFLOP':>6} {'numddpg us':>10} "
            f"{'GFLOP/s':>7} {'floor us':>8} {'torch us':>8} {'x torch':>7} "
            f"{'ref torch/jax/target':>21} {'1st call s':>10}")
    print(head)
    print("-" * len(head))
    for cfg in configs:
        if args.threads == "both":
            thread_list = [1, 2]
        elif args.threads == "auto":
            thread_list = [auto_blas_threads(cfg[2], cfg[3])]
        else:
            thread_list = [int(args.threads)]
        for th in thread_list:
            med, first, fl = bench_config(cfg, th, args.rounds, not args.no_torch)
            ours = med["numddpg"]
            torch_us = med.get("torch", float("nan"))
            ref = "/".join(str(v) for v in PUBLISHED[cfg])
            print(f"{str(cfg):32} {th:>3} {fl / 1e6:6.1f} {ours:10.0f} {fl / ours / 1e3:7.1f} "
                  f"{med['floor']:8.0f} {torch_us:8.0f} {torch_us / ours:7.2f} {ref:>21} "
                  f"{first:10.2f}", flush=True)


if __name__ == "__main__":
    main()
