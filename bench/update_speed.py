"""Microseconds per DDPG update: numddpg against JAX's whole-burst update, the BLAS floor, PyTorch.

    python bench/update_speed.py [--both | --pinned] [--rounds 7] [--K 20] [--config 0 2]
                                 [--no-jax] [--no-torch]

For each config (obs, act, hidden, batch), float32, minibatches sampled from a 10,000-row replay
buffer, one process alternates the contenders round by round, each timed on one call of K
updates (sampling included, as in training):
  numddpg C=k   ``DDPGAgent(chunks=k).update_burst``: the jitted burst with each minibatch cut
                into k row chunks on k threads, BLAS single-threaded (numddpg.kernels.threads);
                k = 1 is the serial update.  "numddpg" is the plan numddpg.kernels.threads picks.
  numddpg C=1 blas=N   (all cores only) the serial update with N BLAS threads per product, the
                first speed pass's way of using the cores
  jax-burst     bench/jax_ddpg.py: the same update compiled whole by XLA, K updates per jitted
                call through lax.scan, sampling inside the jit (the way SBX runs DDPG)
  floor         the same update's matrix products alone, through numpy, back to back
  torch         bench/torch_ddpg.py, the same update in PyTorch eager mode (if installed)
and prints medians, the ratio jax-burst / numddpg (above 1: numddpg faster) and the first call's
time (Numba cache load or compile; XLA compile).

  (default)   all cores, every contender with its default threads
  --pinned    the process pinned to one core (sched_setaffinity before numpy, Numba or JAX
              load: their pools see one CPU), every contender single-threaded
  --both      both of the above, each in a fresh process, then one table of the two ratios and
              numddpg's pinned / all-cores slowdown

The CPU (vendor, family/model, SIMD flags, expected peak) and the single-thread sgemm rate of
the BLAS that Numba calls (numddpg.kernels.threads.sgemm_gflops) head the output, so a BLAS cliff shows.
"""
import argparse
import json
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
CONFIGS = [(3, 1, (64, 64), 64), (17, 6, (256, 256), 100), (17, 6, (256, 256), 256),
           (17, 6, (400, 300), 256)]


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--pinned", action="store_true", help="one core, single-threaded")
    mode.add_argument("--both", action="store_true", help="all cores, then pinned; one table")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--K", type=int, default=20, help="updates per timed call")
    ap.add_argument("--config", type=int, nargs="*", help="indices into CONFIGS")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", help=argparse.SUPPRESS)        # (--both's children write here)
    return ap.parse_args(argv)


ARGS = parse(sys.argv[1:]) if __name__ == "__main__" else None
if ARGS is not None and ARGS.pinned:           # before any thread pool exists
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(BENCH, ".."))
from numddpg import DDPGAgent  # noqa: E402
from numddpg.kernels import threads  # noqa: E402


def Replay(obs_dim, act_dim, n):
    """A filled float32 replay buffer of random transitions (1 % terminal)."""
    return threads.random_replay(obs_dim, act_dim, n, done_rate=0.01)


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
    """Every matrix product of one DDPG update (numddpg.kernels.update.ddpg_update's order)."""
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


def torch_runner(cfg, K, n_threads):
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, BENCH)
    from torch_ddpg import TorchDDPG
    torch.set_num_threads(n_threads)
    o, a, hidden, B = cfg
    rep = Replay(o, a, 10_000)
    data = [torch.from_numpy(x) for x in (rep.obs, rep.act, rep.rew, rep.obs2, rep.done)]
    agent = TorchDDPG(o, a, hidden)
    return lambda: agent.burst(data, B, K)


def jax_runner(cfg, K):
    try:
        sys.path.insert(0, BENCH)
        from jax_ddpg import JaxDDPG
    except ImportError:
        return None
    o, a, hidden, B = cfg
    rep = Replay(o, a, 10_000)
    agent = JaxDDPG(o, a, hidden)
    return lambda: agent.burst(rep, B, K)


# Idle BLAS/OpenMP/XLA worker threads spin for a while after a call before they sleep; each
# timed block starts after a pause that lets every other contender's pool fall asleep.
SETTLE_S = 0.2


def timed(fn):
    time.sleep(SETTLE_S)
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def agent_maker(cfg):
    o, a, hidden, _ = cfg
    return lambda chunks: DDPGAgent(o, a, -1.0, 1.0, hidden_sizes=hidden, seed=0, chunks=chunks)


def plan_for(cfg):
    """The chunks numddpg.kernels.threads picks for cfg (its cache, or a calibration now)."""
    o, a, hidden, B = cfg
    return threads.calibrated_chunks(agent_maker(cfg), "ddpg", o, a, hidden, B, np.float32)


def bench_config(cfg, chunks, args, n_cpus):
    o, a, hidden, B = cfg
    K = args.K
    rep = Replay(o, a, 10_000)
    runners, first = {}, {}
    make_agent = agent_maker(cfg)
    for plan in threads.candidate_plans(n_cpus, B):
        name = f"numddpg C={plan.chunks}"
        agent = make_agent(plan.chunks)
        first[name] = timed(lambda: agent.update_burst(rep, B, 1))
        runners[name] = lambda agent=agent: agent.update_burst(rep, B, K)
    if n_cpus > 1:                             # the first pass's way to use the cores
        name = f"numddpg C=1 blas={n_cpus}"
        agent_b = make_agent(1)
        agent_b.update_burst(rep, B, 1)

        def blas_run(agent=agent_b):
            with threads.limit_blas_threads(n_cpus):   # (~0.1 ms per call, of 20 updates)
                agent.update_burst(rep, B, K)
        runners[name] = blas_run
    runners["floor"] = floor_runner(update_gemms(o, a, hidden, B), K)
    if not args.no_jax:
        t = time.perf_counter()
        jr = jax_runner(cfg, K)
        if jr is not None:
            jr()                                # compile
            first["jax-burst"] = time.perf_counter() - t
            runners["jax-burst"] = jr
    if not args.no_torch:
        tr = torch_runner(cfg, K, n_cpus)
        if tr is not None:
            runners["torch"] = tr
    for fn in runners.values():
        fn()                                   # warm-up
    times = {name: [] for name in runners}
    for _ in range(args.rounds):               # alternate the contenders every round
        for name, fn in runners.items():
            times[name].append(timed(fn) / K)
    med = {name: float(np.median(v)) * 1e6 for name, v in times.items()}
    med["numddpg"] = med[f"numddpg C={chunks}"]
    return {"config": cfg, "plan": chunks, "us": med, "first_s": first,
            "mflop": flops(update_gemms(o, a, hidden, B)) / 1e6}


def run(args):
    n_cpus = len(os.sched_getaffinity(0))
    configs = [CONFIGS[i] for i in args.config] if args.config else CONFIGS
    mode = "pinned to one core, single-threaded" if args.pinned else f"all {n_cpus} cores"
    print(f"numddpg update speed, float32, {mode}, K = {args.K} updates per call, medians of "
          f"{args.rounds} alternating rounds")
    print(threads.describe_cpu())
    print(threads.describe_sgemm())
    results = []
    threads.limit_blas_threads(1)              # the kernels' BLAS (SciPy's): numpy's keeps its own
    # Every plan first, before a JAX or torch pool exists whose idle threads could spin beside
    # the calibration (as training would have it: numddpg alone).
    plans = {cfg: plan_for(cfg) for cfg in configs}
    for cfg in configs:
        print(f"{str(cfg):26} plan: {plans[cfg][0]} chunks ({plans[cfg][1]['source']}: "
              f"{plans[cfg][1].get('us_per_update', {})} us per update)", flush=True)
    for cfg in configs:
        r = bench_config(cfg, plans[cfg][0], args, n_cpus)
        results.append(r)
        us = r["us"]
        cols = "  ".join(f"{name} {v:8.0f}" for name, v in us.items() if name != "numddpg")
        jx = us.get("jax-burst", float("nan"))
        print(f"{str(cfg):26} {r['mflop']:6.1f} MFLOP  us/update: {cols}  | plan C={r['plan']}"
              f"  jax/numddpg {jx / us['numddpg']:.2f}  numddpg GFLOP/s "
              f"{r['mflop'] / us['numddpg'] * 1e3:.1f}  first call s: "
              + " ".join(f"{k} {v:.1f}" for k, v in r["first_s"].items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
    return results


def run_both(args, argv):
    """Each mode in a fresh process (a process's thread pools are sized once), then one table."""
    out = {}
    child = [a for a in argv if a != "--both"]
    for mode in ("all", "pinned"):
        path = f"/tmp/numddpg_update_speed_{os.getpid()}_{mode}.json"
        cmd = [sys.executable, os.path.abspath(__file__), *child, "--json", path]
        if mode == "pinned":
            cmd.append("--pinned")
        subprocess.run(cmd, check=True)
        with open(path) as f:
            out[mode] = json.load(f)
        os.remove(path)
    print("\nratios (jax-burst time / numddpg time: above 1 means numddpg is faster; target "
          ">= 1.25), and numddpg pinned / all cores (target <= 2.2)")
    print(f"{'config':26} {'all cores':>10} {'pinned':>8} {'pinned/all':>10}   "
          f"numddpg us all / pinned   jax us all / pinned")
    for r_all, r_pin in zip(out["all"], out["pinned"]):
        ua, up = r_all["us"], r_pin["us"]
        jr = [u.get("jax-burst", float("nan")) / u["numddpg"] for u in (ua, up)]
        print(f"{str(tuple(r_all['config'])):26} {jr[0]:10.2f} {jr[1]:8.2f} "
              f"{up['numddpg'] / ua['numddpg']:10.2f}   {ua['numddpg']:8.0f} / {up['numddpg']:<8.0f}"
              f"  {ua.get('jax-burst', float('nan')):8.0f} / {up.get('jax-burst', float('nan')):.0f}")


if __name__ == "__main__":
    if ARGS.both:
        run_both(ARGS, sys.argv[1:])
    else:
        run(ARGS)
