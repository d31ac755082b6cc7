"""Numba's own per-pass times of the update kernel's compile, for this checkout or another tree.

    python bench/kernel_compile_passes.py [--tree DIR] [--algo DDPG|TD3]

A cold learn(1500) on Pendulum-v1 with an empty Numba cache (NUMBA_CACHE_DIR a new folder), then
the compile record of the agent's update kernel (``cres.metadata["pipeline_times"]``): the sum
over passes and the largest ones (type inference, lowering with LLVM, inlining...).  Run it for
two trees alternately, other processes paused, to see where a compile-time difference lies.
The CPU heads the output.
"""
import argparse
import os
import sys
import tempfile


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--algo", default="DDPG", choices=["DDPG", "TD3"])
    args = ap.parse_args(argv)
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
    sys.path.insert(0, os.path.abspath(args.tree))
    import numddpg
    from numddpg.files.rundir import cpu_model
    model = getattr(numddpg, args.algo)("Pendulum-v1", seed=0, chunks=1, blas_threads=1,
                                        log=False)
    model.learn(1500, progress_bar=False)
    print(f"CPU: {cpu_model()}; tree: {os.path.abspath(args.tree)}; {args.algo}")
    for cres in model.agent._kernel.overloads.values():
        for pipeline, passes in cres.metadata["pipeline_times"].items():
            top = sorted(((v.run, name.split("_", 1)[-1]) for name, v in passes.items()),
                         reverse=True)[:6]
            print(f"{pipeline}: sum {sum(v.run for v in passes.values()):.2f} s; "
                  + "; ".join(f"{name} {t:.2f}" for t, name in top))


if __name__ == "__main__":
    main()
