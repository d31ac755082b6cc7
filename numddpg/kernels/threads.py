"""How an update uses the cores: row chunks on threads, BLAS single-threaded; by measurement.

The update (numddpg.update) cuts every minibatch into C row chunks.  Each chunk's passes run on
one thread (the agent runs its nogil kernel on ``agent.threads`` Python threads) and call BLAS
single-threaded, so the cores share all of an update's work -- element loops, small products,
Adam -- not only the large matrix products, and two threads never meet inside a product.  C
fixes the summation order and so the numbers: a run keeps it for good (config.json,
checkpoints).  The threads that run the chunks change no bit: a run may change them any time.

``calibrated_chunks`` picks C by timing bursts of every candidate (1, 2, 4, ... up to the
cores) on the run's own sizes and batch, at first use per (CPU, algorithm, sizes, batch, dtype,
versions); the result is cached in ``cache_path()`` and recorded in the run's config.json.
``NUMDDPG_CHUNKS`` or the ``chunks`` hyperparameter overrides it.  ``ThreadGuard`` keeps a plan
from making a busy machine worse: it measures the run's bursts on all threads and, now and then,
on one, and runs the faster.

Measured in bench/RESULTS.md ("Update speed (second pass)"); ``describe_cpu`` and
``describe_sgemm`` print the CPU and the single-thread sgemm rate that bench/ shows next to
every result.
"""
import json
import os
import platform
import statistics
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba's np.dot calls: load it before
from numba import njit            # threadpoolctl looks for it)
from threadpoolctl import ThreadpoolController, threadpool_info

ENV_BLAS = "NUMDDPG_BLAS_THREADS"
ENV_CHUNKS = "NUMDDPG_CHUNKS"
CACHE_VERSION = 1
# A plan with more chunks must beat the one-chunk update by this much to be picked: within it,
# the serial update wins (no thread hand-offs, nothing to lose on a machine that gets busy).
MIN_GAIN = 0.05
# An update of more multiply-adds than this (about a tenth of a second on one core) is not timed:
# its matrix products alone keep every chunk's thread busy, so the largest plan is taken, and the
# calibration's ~20 updates on every plan's agent (all alive at once) would cost minutes and
# several times the run's memory.
LARGE_UPDATE = 2e9

Plan = namedtuple("Plan", ["chunks", "threads"])


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------

def check_threads(n, name="blas_threads"):
    try:
        value = int(n)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or isinstance(n, bool):
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return value


def usable_cpus():
    """CPUs this process may run on (its affinity), capped by NUMBA_NUM_THREADS (which
    ``numddpg sweep`` sets to 1 for the runs it packs one per core)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:                     # (not Linux)
        n = os.cpu_count() or 1
    return max(1, min(n, numba.config.NUMBA_NUM_THREADS))


def _numba_blas():
    """threadpoolctl's handle on the BLAS that Numba's np.dot calls (SciPy's), or on every
    BLAS when it cannot tell which one that is."""
    ctl = ThreadpoolController()
    paths = [i["filepath"] for i in threadpool_info()
             if i.get("user_api") == "blas" and "scipy" in os.path.basename(
                 os.path.dirname(i["filepath"]))]
    return ctl.select(filepath=paths) if paths else ctl.select(user_api="blas")


_warm = False


def warm_blas():
    """One multi-threaded product through the kernels' BLAS, once per process, before anything
    holds it to one thread.  Measured on a Zen 1 (AMD family 23 model 1, OpenBLAS 0.3.30 and
    0.3.31): single-threaded sgemm ran at ~9.5 GFLOP/s in a process whose first BLAS call was
    single-threaded (pinned with taskset, or limited to 1 before any call) and at ~34 after one
    multi-threaded call, and a (256, 256) batch-256 update took 38.4 ms against 12.4 ms.  The
    call costs well under a millisecond; it works under a one-CPU affinity too (OpenBLAS starts
    the extra thread anyway).  ``describe_sgemm`` shows both states."""
    global _warm
    if _warm:
        return
    _warm = True
    a = np.ones((128, 128), np.float32)
    with _numba_blas().limit(limits=2):
        _sgemm_loop(a, a, np.empty_like(a), 1)


def limit_blas_threads(n):
    """Set the BLAS that the kernels call to ``n`` threads (``NUMDDPG_BLAS_THREADS`` overrides
    the default of 1) after ``warm_blas``; returns the limiter, whose
    ``restore_original_limits()`` undoes it."""
    n = check_threads(n)
    warm_blas()
    return _numba_blas().limit(limits=n)


def default_blas_threads():
    override = os.environ.get(ENV_BLAS)
    return check_threads(override, ENV_BLAS) if override else 1


# ---------------------------------------------------------------------------------------------
# The CPU and its BLAS
# ---------------------------------------------------------------------------------------------

def cpu_info():
    """vendor, model name, family, model, SIMD flags, MHz and the expected single-core fp32 peak
    (FLOP per cycle x MHz: 2 FMA units x 8 lanes x 2 = 32 with AVX2; 16 on AMD Zen 1, which runs
    AVX2 as 2 x 128 bits; 16 with AVX alone), read from /proc/cpuinfo."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break                       # the first CPU's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    vendor = fields.get("vendor_id", platform.processor() or "?")
    family, model = int(fields.get("cpu family", -1)), int(fields.get("model", -1))
    zen1 = vendor == "AuthenticAMD" and family == 23 and model < 0x30
    if "avx2" in flags and "fma" in flags:
        per_cycle = 16 if zen1 else 32
    else:
        per_cycle = 16 if "avx" in flags else 8
    mhz = float(fields.get("cpu MHz", 0) or 0)
    return {"vendor": vendor, "model_name": fields.get("model name", "?"), "family": family,
            "model": model, "zen1": zen1, "mhz": mhz,
            "simd": [f for f in ("avx", "avx2", "fma", "avx512f") if f in flags],
            "peak_gflops": per_cycle * mhz / 1e3, "cpus": usable_cpus()}


def describe_cpu():
    c = cpu_info()
    return (f"CPU: {c['vendor']} {c['model_name']}, family {c['family']} model {c['model']}"
            f"{' (Zen 1: AVX2 as 2x128-bit)' if c['zen1'] else ''}, {'/'.join(c['simd'])}, "
            f"{c['mhz']:.0f} MHz reported, {c['cpus']} usable CPUs; fp32 peak at that clock "
            f"~{c['peak_gflops']:.0f} GFLOP/s per core (boost clocks run above it)")


@njit(cache=True)
def _sgemm_loop(a, b, out, reps):
    for _ in range(reps):
        np.dot(a, b, out)


def sgemm_gflops(n=256, seconds=0.05):
    """GFLOP/s of an n x n x n float32 product through the BLAS Numba calls, at its current
    thread setting, in this process's current state (best of 3 timed loops)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), np.float32)
    _sgemm_loop(a, b, out, 1)
    t = time.perf_counter()
    _sgemm_loop(a, b, out, 2)
    reps = max(1, int(seconds / max((time.perf_counter() - t) / 2, 1e-7)))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        _sgemm_loop(a, b, out, reps)
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * n ** 3 / best / 1e9


def describe_sgemm():
    """Single-thread sgemm rate as this process starts (the state a pinned or single-threaded
    run trains in), then after one multi-threaded call: far apart, it is a BLAS cliff."""
    peak = cpu_info()["peak_gflops"]
    with _numba_blas().limit(limits=1):           # (not limit_blas_threads: no warm_blas yet)
        first = sgemm_gflops()
    warm_blas()
    with limit_blas_threads(1):
        after = sgemm_gflops()
    return (f"single-thread sgemm 256^3 (the kernels' BLAS): {first:.1f} GFLOP/s as started, "
            f"{after:.1f} after one multi-threaded call ({first / peak:.0%} and {after / peak:.0%}"
            f" of the peak at the reported clock; a cliff shows as a large gap)" if peak else "")


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------

def candidate_plans(cpus, batch_size):
    """1, 2, 4, ... chunks up to the usable CPUs, each of at least 16 rows, one thread each."""
    plans, c = [Plan(1, 1)], 2
    while c <= cpus and batch_size // c >= 16:
        plans.append(Plan(c, c))
        c *= 2
    return plans


def random_replay(obs_dim, act_dim, n=2048, seed=0, done_rate=0.0):
    """n random float32 transitions in the attribute layout update_burst reads (for timing:
    the calibration here, bench/update_speed.py and bench/jax_ddpg.py's self-check)."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(obs=rng.standard_normal((n, obs_dim), dtype=np.float32),
                           act=rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
                           rew=rng.standard_normal(n, dtype=np.float32),
                           obs2=rng.standard_normal((n, obs_dim), dtype=np.float32),
                           done=(rng.random(n) < done_rate).astype(np.float32), size=n)


def measure_plans(make_agent, plans, batch_size, replay, rounds=9, burst_s=0.05):
    """{chunks: [seconds per update of each burst]} of each plan, ``rounds`` bursts of about
    ``burst_s``, the plans alternating round by round; ``make_agent(chunks)`` builds a
    throwaway agent."""
    agents = {p: make_agent(p.chunks) for p in plans}
    single = plans[0]
    for p, agent in agents.items():            # compile or load the kernels, warm the caches
        agent.threads = p.threads
        agent.update_burst(replay, batch_size, 1)
    t = time.perf_counter()
    agents[single].update_burst(replay, batch_size, 2)
    K = max(1, min(200, int(burst_s / max((time.perf_counter() - t) / 2, 1e-7))))
    times = {p.chunks: [] for p in plans}
    for _ in range(rounds):
        for p, agent in agents.items():
            t = time.perf_counter()
            agent.update_burst(replay, batch_size, K)
            times[p.chunks].append((time.perf_counter() - t) / K)
    return times


def pick(times):
    """The chunk count to use from {chunks: [seconds per update, one per burst]}: the one with
    the lowest median among those that beat one chunk by MIN_GAIN both in their fastest burst
    and in their median one, else 1.  The fastest burst is what a plan can do when no other
    process takes a core away for a few milliseconds (a shared host does); the median is what it
    does; with few threads' worth of work per update (small networks), thread hand-offs make a
    plan's best burst good and its typical one bad, and it must win both."""
    best, median = ({c: f(v) for c, v in times.items()} for f in (min, statistics.median))
    wins = [c for c in times if best[c] < (1 - MIN_GAIN) * best[1]
            and median[c] < (1 - MIN_GAIN) * median[1]]
    return min(wins, key=median.get) if wins else 1


def cache_path():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "numddpg" / "plans.json"


def _cache_key(algo, obs_dim, act_dim, hidden, batch_size, dtype):
    c = cpu_info()
    return "|".join(str(v) for v in (
        CACHE_VERSION, c["vendor"], c["model_name"], c["family"], c["model"], c["cpus"], algo,
        obs_dim, act_dim, tuple(hidden), batch_size, np.dtype(dtype).name, numba.__version__,
        np.__version__, _blas_version()))


def _blas_version():
    return ",".join(str(i.get("version")) for i in _numba_blas().info())


def _read_cache(path):
    """The cache as a dict, or {} when it is missing or unreadable (an untrusted file: a bad
    entry is ignored, never trusted)."""
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _timings(value):
    """{chunks (str): microseconds} from a cache entry, keeping only finite positive numbers."""
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if type(v) in (int, float)
            and 0 < v < 1e9}


def _write_cache(path, data):
    """Write atomically; a cache that cannot be written (read-only home) is only skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def largest_plan(batch_size):
    """The most chunks a run of this batch may use on this process's CPUs (what the memory
    check counts before the calibration chooses)."""
    return candidate_plans(usable_cpus(), batch_size)[-1].chunks


def calibrated_chunks(make_agent, algo, obs_dim, act_dim, hidden, batch_size, dtype,
                      path=None, macs=0):
    """(chunks, record) for a run: NUMDDPG_CHUNKS if set, else the largest plan for an update of
    more than LARGE_UPDATE multiply-adds (``macs``, the caller's estimate), else the cached
    calibration for this CPU and shape, else a fresh one (about 1 s after the kernels are
    compiled), cached.  ``record`` (for config.json) says where the value came from and what
    was measured."""
    override = os.environ.get(ENV_CHUNKS)
    if override:
        return check_threads(override, ENV_CHUNKS), {"source": ENV_CHUNKS}
    plans = candidate_plans(usable_cpus(), batch_size)
    if len(plans) == 1:
        return 1, {"source": "one usable CPU or a small batch"}
    if macs > LARGE_UPDATE:
        return plans[-1].chunks, {"source": f"a large update ({macs:.2g} multiply-adds): "
                                            "every usable CPU, not timed"}
    path = cache_path() if path is None else Path(path)
    key = _cache_key(algo, obs_dim, act_dim, hidden, batch_size, dtype)
    cached = _read_cache(path).get(key)
    allowed = {p.chunks for p in plans}
    chunks = cached.get("chunks") if isinstance(cached, dict) else None
    if type(chunks) is int and chunks in allowed:          # (not a bool, a float, a string)
        return chunks, {"source": str(path), "chunks": chunks,
                        "us_per_update": _timings(cached.get("us_per_update")),
                        "us_median": _timings(cached.get("us_median"))}
    with limit_blas_threads(1):
        times = measure_plans(make_agent, plans, batch_size, random_replay(obs_dim, act_dim))
    entry = {"chunks": pick(times),
             "us_per_update": {str(c): round(min(v) * 1e6, 1) for c, v in times.items()},
             "us_median": {str(c): round(statistics.median(v) * 1e6, 1)
                           for c, v in times.items()},
             "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    data = _read_cache(path)
    data[key] = entry
    _write_cache(path, data)
    return entry["chunks"], {"source": "calibrated now", **entry}


# ---------------------------------------------------------------------------------------------
# A busy machine
# ---------------------------------------------------------------------------------------------

class ThreadGuard:
    """Runs a multi-chunk agent on its threads while that pays, on one thread while it does not.

    After each burst the loop reports the seconds per update; the guard keeps the last WINDOW
    of them for each setting (all threads, one thread).  It mostly runs the better setting and
    now and then runs one burst on the other (three early on, then one every ``retry``), so
    both stay measured; it switches when the other setting's median is MIN_GAIN better.  On a
    machine where another process holds a core, a chunk waits for a descheduled thread and one
    thread wins; when the core is free again, the probes see it.  Results do not change: the
    thread count never does (numddpg.update, "Row chunks").  Its own measurements, not the
    calibration's, so it works for a run whose chunks were given or loaded.
    """

    WINDOW = 8

    def __init__(self, agent, retry=32):
        self.agent, self.retry, self.n = agent, retry, agent.chunks
        self.times = {1: [], self.n: []}
        self.best = self.n                     # the setting the guard runs between probes
        self.bursts = 0
        agent.threads = self.n

    def observe(self, seconds_per_update):
        if self.n == 1:
            return
        threads = self.agent.threads
        self.times[threads] = (self.times[threads] + [seconds_per_update])[-self.WINDOW:]
        self.bursts += 1
        other = 1 if self.best == self.n else self.n
        early = len(self.times[other]) < 3 and self.bursts % 4 == 0
        if threads == self.best and (early or self.bursts % self.retry == 0):
            self._use(other)                    # one probe burst of the other setting
            return
        if len(self.times[1]) >= 3 and len(self.times[self.n]) >= 3:
            single, multi = (statistics.median(self.times[k]) for k in (1, self.n))
            if self.best == self.n and single < (1 - MIN_GAIN) * multi:
                self.best = 1
            elif self.best == 1 and multi < (1 - MIN_GAIN) * single:
                self.best = self.n
        self._use(self.best)

    def _use(self, threads):
        if self.agent.threads != threads:       # (the setter allocates the barrier's flags)
            self.agent.threads = threads
