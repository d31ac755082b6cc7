"""The fixed run whose bytes a change that promises "no number changes" must keep.

    python bench/fingerprint.py                 # this checkout's SHA-256 per algorithm
    python bench/fingerprint.py --against REV   # and REV's, from a temporary git worktree

Pendulum-v1, DDPG and TD3, seed 3, hidden (32, 32), one chunk, one BLAS thread, 3,000 env
steps (updates from step 1,000, so 2,000 updates), no run directory; the digest covers every
array of the agent's state (parameters, targets, Adam moments, generator, counters) in name
order.  Floating-point results depend on the CPU and the BLAS build, so only digests computed
on one machine are compared: --against runs both sides here, one after the other.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALGOS = ("ddpg", "td3")


def digests():
    """{algo: sha256 hex} of the fixed run, computed with the numddpg on sys.path."""
    import numpy as np

    import numddpg
    out = {}
    for algo in ALGOS:
        cls = numddpg.TD3 if algo == "td3" else numddpg.DDPG
        model = cls("Pendulum-v1", seed=3, hidden_sizes=(32, 32), chunks=1, blas_threads=1,
                    log=False)
        model.learn(3000, progress_bar=False)
        h = hashlib.sha256()
        for name, array in sorted(model.agent.state_dict().items()):
            h.update(name.encode())
            h.update(str(array.dtype).encode())
            h.update(np.ascontiguousarray(array).tobytes())
        out[algo] = h.hexdigest()
    return out


def digests_in(tree):
    """The digests computed by a fresh interpreter importing numddpg from ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMDDPG_CHUNKS="1", NUMDDPG_BLAS_THREADS="1")
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "sys.path.insert(0, sys.argv[2]); import fingerprint; "
            "print(json.dumps(fingerprint.digests()))")
    done = subprocess.run([sys.executable, "-c", code, str(tree), str(Path(__file__).parent)],
                          env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode:
        raise SystemExit(f"fingerprint failed in {tree}:\n{done.stderr}")
    import json
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", metavar="REV", help="a git revision to compare with")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from numddpg.files.rundir import cpu_model
    print(f"CPU: {cpu_model()}")
    here = digests_in(ROOT)
    rows = [("this checkout", here)]
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(tree), args.against], check=True)
            try:
                rows.append((args.against, digests_in(tree)))
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], check=True)
    for name, d in rows:
        print(f"{name:>16}: " + "  ".join(f"{a} {d[a][:16]}" for a in ALGOS))
    if len(rows) == 2:
        same = rows[0][1] == rows[1][1]
        print("identical" if same else "DIFFERENT")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
