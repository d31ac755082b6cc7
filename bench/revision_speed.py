"""Speed of this checkout against another revision: cold start, the update, whole training.

    python bench/revision_speed.py --against REV [--rounds 5] [--steps 2000] [--no-train]
                                   [--no-cold | --cold-rounds N]

For a change that promises "no speed changes" (a move of code, a rename): the two trees
(this checkout, and REV checked out in a temporary git worktree) are measured alternately, one
fresh interpreter per tree and round, so that the host's drift hits both alike:

  cold start      import numddpg and the first learn() of 1,500 Pendulum-v1 steps (the Numba
                  kernels compiled into an empty cache: NUMBA_CACHE_DIR is a new folder); then
                  TD3's first learn() of as many steps in the same process (its own kernels:
                  the functions DDPG's compiled are loaded already), in the first round only
                  (--cold-rounds N: the first N rounds; --no-cold: never)
  warm start      the same two first learns in the other rounds, with the kernels loaded from
                  the tree's own cache (filled by an untimed run of each tree first): what
                  every later process of a machine pays
  update          microseconds per update of DDPGAgent.update_burst and TD3Agent's (K = 20
                  updates a call, one chunk, one BLAS thread) at (64, 64) batch 64 and (256, 256)
                  batch 256, minibatches from a 10,000-row buffer; the median of 15 calls a
                  round, and their minimum ("min us": the least disturbed call, the steadier
                  number on a machine that other processes load)
  train           env steps per second of numddpg.DDPG.learn, after a 1,500-step warm-up:
                  Pendulum-v1 with its preset (hidden (64, 64), 50 updates every 50 steps) and
                  HalfCheetah-v5 with hidden (256, 256), batch 256, 1 update per step
                  (--steps env steps each, 1/4 of them on HalfCheetah; --no-train: none)

Then medians over rounds and the ratio this / REV (above 1: this checkout faster; for cold
start and the update, REV's time over this one's).  The CPU heads the output.  Pause anything
else running on the machine first (kill -STOP).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPDATE_CONFIGS = {"update (64, 64) b64, us": ("DDPGAgent", 3, 1, (64, 64), 64),
                  "update (256, 256) b256, us": ("DDPGAgent", 17, 6, (256, 256), 256),
                  "td3 update (64, 64) b64, us": ("TD3Agent", 3, 1, (64, 64), 64),
                  "td3 update (256, 256) b256, us": ("TD3Agent", 17, 6, (256, 256), 256)}


def measure(steps, cold):
    """{quantity: value} for the numddpg on sys.path (run in a fresh interpreter)."""
    out = {}
    t0 = time.perf_counter()
    import numpy as np

    import numddpg
    start = "cold" if cold else "warm"
    numddpg.DDPG("Pendulum-v1", seed=0, chunks=1, blas_threads=1, log=False).learn(
        1500, progress_bar=False)
    out[f"{start} start, s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    numddpg.TD3("Pendulum-v1", seed=0, chunks=1, blas_threads=1, log=False).learn(
        1500, progress_bar=False)
    out[f"td3 first learn after ddpg's ({start}), s"] = time.perf_counter() - t1
    for name, (agent_class, o, a, hidden, batch) in UPDATE_CONFIGS.items():
        agent = getattr(numddpg, agent_class)(o, a, -1.0, 1.0, hidden_sizes=hidden, seed=0,
                                              chunks=1)
        buf = numddpg.ReplayBuffer(o, a, 10_000, seed=0)
        rng = np.random.default_rng(0)
        for _ in range(10_000):
            buf.store(rng.standard_normal(o), rng.uniform(-1, 1, a), rng.standard_normal(),
                      rng.standard_normal(o), 0.0)
        agent.update_burst(buf, batch, 20)                # compile or load from the cache
        times = []
        for _ in range(15):
            t = time.perf_counter()
            agent.update_burst(buf, batch, 20)
            times.append((time.perf_counter() - t) / 20 * 1e6)
        out[name] = statistics.median(times)
        out[name.replace(", us", ", min us")] = min(times)
    for env, kw, n in (("Pendulum-v1", {}, steps),
                       ("HalfCheetah-v5", dict(hidden_sizes=(256, 256), batch_size=256,
                                               update_every=1, start_steps=1000,
                                               update_after=1000), max(steps // 4, 100))
                       ) if steps else ():
        model = numddpg.DDPG(env, seed=0, chunks=1, blas_threads=1, log=False,
                             num_test_episodes=0, **kw)
        model.learn(1500, progress_bar=False)
        t = time.perf_counter()
        model.learn(n, progress_bar=False)                   # n more steps
        out[f"train {env}, steps/s"] = n / (time.perf_counter() - t)
    return out


def measure_in(tree, steps, cold):
    env = dict(os.environ, PYTHONPATH=str(tree), NUMDDPG_CHUNKS="1", NUMDDPG_BLAS_THREADS="1",
               OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as cache:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache
        code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
                "sys.path.insert(0, sys.argv[2]); import revision_speed as r; "
                "print(json.dumps(r.measure(int(sys.argv[3]), sys.argv[4] == '1')))")
        done = subprocess.run([sys.executable, "-c", code, str(tree), str(Path(__file__).parent),
                               str(steps), "1" if cold else "0"], env=env, capture_output=True,
                              text=True, cwd=tempfile.gettempdir())
    if done.returncode:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", metavar="REV", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--no-train", action="store_true", help="the update alone (and cold start)")
    ap.add_argument("--no-cold", action="store_true", help="no cold start (no compile round)")
    ap.add_argument("--cold-rounds", type=int, default=1, metavar="N",
                    help="measure the cold start in the first N rounds (default 1)")
    args = ap.parse_args(argv)
    steps = 0 if args.no_train else args.steps
    sys.path.insert(0, str(ROOT))
    from numddpg.files.rundir import cpu_model
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    print(f"CPU: {cpu_model()}; this checkout: {head} (and its uncommitted changes); "
          f"against: {args.against}", flush=True)
    results = {"this": [], "rev": []}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree),
                        args.against], check=True)
        try:
            for where in (ROOT, tree):            # fill each tree's own cache (untimed)
                measure_in(where, 0, cold=False)
            for r in range(args.rounds):
                order = [("this", ROOT), ("rev", tree)][::1 if r % 2 == 0 else -1]
                for name, where in order:
                    results[name].append(measure_in(where, steps,
                                                    cold=(r < args.cold_rounds
                                                          and not args.no_cold)))
                    print(f"round {r + 1}, {name}: " + ", ".join(
                        f"{k} {v:,.1f}" for k, v in results[name][-1].items()), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=True)
    print(f"\n| quantity | this ({head}) | {args.against} | ratio (above 1: this faster) |")
    print("|---|---:|---:|---:|")
    keys = dict.fromkeys(k for r in results["this"] for k in r)   # (cold rounds' keys first)
    for key in keys:
        a = statistics.median(r[key] for r in results["this"] if key in r)
        b = statistics.median(r[key] for r in results["rev"] if key in r)
        ratio = a / b if "steps/s" in key else b / a
        print(f"| {key} | {a:,.1f} | {b:,.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
