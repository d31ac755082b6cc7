"""numddpg.kernels.update's row chunks and workspace, and numddpg.kernels.threads' plans.

The one-chunk update is held to the plain-NumPy twin in test_agents.py and test_td3.py; here a
chunked update is held to the one-chunk update.

Tolerances: CHUNKS = 1e-12 absolute (float64) on parameters, targets and moments.  Chunks change
only the order of the sums that form each gradient (C partial sums added at the Adam step
instead of one sum over the batch): ~1e-16 relative per gradient element, magnified by at most
lr / eps in Adam's first steps as in test_agents.PATHS.  A wrongly routed row or chunk moves a
parameter by ~lr = 1e-3.  Thread counts must not change a single bit (float32 and float64).
"""
import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from numddpg.kernels import threads
from numddpg.engine.agents import DDPGAgent, TD3Agent
from numddpg.kernels.update import FLOAT64_SLOTS, carve_work, work_size, work_slots

from helpers import fake_buffer, random_batch, small_agent  # noqa: E402

CHUNKS = 1e-12
CLASSES = [DDPGAgent, TD3Agent]


def state(agent):
    return {k: v.copy() for k, v in agent.state_dict().items()}


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("chunks", [2, 3, 8])
def test_chunked_update_equals_the_serial_update(cls, chunks, rng):
    """Batches of 1 (chunks left empty), 5 (uneven chunks), 8 and 16 rows; then bursts."""
    serial, chunked = small_agent(cls, seed=4), small_agent(cls, seed=4, chunks=chunks)
    for B in (5, 1, 8, 16, 5):
        batch = random_batch(rng, serial, B)
        a, b = serial.update(*batch), chunked.update(*batch)
        for key in ("loss_q", "q_mean"):
            assert b[key] == pytest.approx(a[key], rel=CHUNKS, abs=1e-15), key
    buf = fake_buffer(rng, serial, capacity=64, size=50)
    np.testing.assert_allclose(serial.update_burst(buf, 12, 5), chunked.update_burst(buf, 12, 5),
                               rtol=CHUNKS, atol=1e-15)
    s, c = state(serial), state(chunked)
    for name in s:
        np.testing.assert_allclose(c[name], s[name], rtol=0, atol=CHUNKS, err_msg=name)
    for name, g in serial.gradients().items():          # grad[0] holds the whole gradient
        np.testing.assert_allclose(chunked.gradients()[name], g, rtol=0, atol=CHUNKS)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_changes_no_bit(cls, dtype, rng):
    """Two agents with 2 chunks, on 1 and on 2 threads (switched mid-run), end bit-identical."""
    agents = [cls(5, 2, -1.0, 1.0, hidden_sizes=(32, 16), dtype=dtype, seed=1, chunks=2)
              for _ in range(2)]
    buf = fake_buffer(rng, agents[0], capacity=300, size=256)
    agents[0].threads = 1
    for n in (2, 1, 2):
        agents[1].threads = n
        stats = [agent.update_burst(buf, 64, 3) for agent in agents]
        np.testing.assert_array_equal(stats[0], stats[1])
    for name, arr in state(agents[0]).items():
        np.testing.assert_array_equal(arr, state(agents[1])[name], err_msg=name)


def finishes(fn, seconds=120):
    """fn() run on a thread of its own; its result, or a failure if it is still waiting after
    ``seconds`` (a thread left waiting at a barrier)."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:           # handed to the test
            out["error"] = e
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "a burst never finished: a thread waits at a barrier"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_thread_aborts_the_burst_and_the_next_one_runs(failing, rng):
    """The kernel raising on one of two threads (this one, 0, or the helper, 1) makes
    update_burst raise that error rather than leave the other thread waiting at a barrier;
    the barrier's flags are zeroed, and the next bursts run on both threads, bit-identical to
    an agent that never failed when the failure came before any work (thread 0 raising before
    it samples)."""
    agent, twin = small_agent(DDPGAgent, seed=3, chunks=2), small_agent(DDPGAgent, seed=3,
                                                                      chunks=2)
    buf = fake_buffer(rng, agent, capacity=64, size=50)

    real = agent._kernel

    def kernel(me, n, *args):
        if me == failing:
            raise RuntimeError(f"thread {me} failed")
        return real(me, n, *args)

    agent._kernel = kernel
    with pytest.raises(RuntimeError, match=f"thread {failing} failed"):
        finishes(lambda: agent.update_burst(buf, 12, 3))
    assert not agent._flags.any()
    agent._kernel = real
    stats = finishes(lambda: [agent.update_burst(buf, 12, 3) for _ in range(3)])
    assert np.isfinite(np.concatenate(stats)).all()
    if failing == 0:
        expected = [twin.update_burst(buf, 12, 3) for _ in range(3)]
        np.testing.assert_array_equal(np.concatenate(stats), np.concatenate(expected))


def test_threads_are_capped_by_the_chunks():
    agent = small_agent(DDPGAgent, chunks=2)
    assert agent.threads == 2
    agent.threads = 16
    assert agent.threads == 2
    with pytest.raises(ValueError, match="threads"):
        agent.threads = 0


@pytest.mark.parametrize("B, C, n_critics", [(1, 1, 1), (7, 2, 2), (5, 8, 1), (256, 4, 2)])
def test_work_slots_tile_the_allocation(B, C, n_critics):
    """carve_work's views cover work_size elements exactly once, with the slots' shapes."""
    slots = work_slots(B, C, 3, 2, (3, 8, 6, 2), (5, 8, 6, 1), n_critics)
    flat = np.full(work_size(slots) + 3, -1.0)
    work = carve_work(flat, slots)
    for k, (name, shape) in enumerate(slots):
        view = getattr(work, name)
        assert view.shape == shape, name
        if name in FLOAT64_SLOTS:
            assert view.dtype == np.float64 and not np.shares_memory(view, flat), name
            continue
        assert np.shares_memory(view, flat) or view.size == 0, name
        assert np.all(view == -1), f"{name} overlaps an earlier slot"
        view[...] = k
    assert np.all(flat[:work_size(slots)] >= 0) and np.all(flat[-3:] == -1)


# --- numddpg.kernels.threads ------------------------------------------------------------------------------

def test_candidate_plans_need_cores_and_rows():
    assert [p.chunks for p in threads.candidate_plans(1, 256)] == [1]
    assert [p.chunks for p in threads.candidate_plans(2, 256)] == [1, 2]
    assert [p.chunks for p in threads.candidate_plans(16, 64)] == [1, 2, 4]     # >= 16 rows each
    assert [p.chunks for p in threads.candidate_plans(16, 20)] == [1]


def test_pick_prefers_one_chunk_unless_more_win_clearly():
    one = [1.0, 1.0, 1.1]
    assert threads.pick({1: one, 2: [0.97, 0.97, 0.97]}) == 1          # within MIN_GAIN
    assert threads.pick({1: one, 2: [0.8, 0.8, 0.9], 4: [0.85, 0.7, 0.9]}) == 2   # best median
    assert threads.pick({1: one, 2: [1.3, 1.3, 1.3]}) == 1
    assert threads.pick({1: one, 2: [0.5, 1.2, 1.3]}) == 1    # a lucky burst is not enough


class Counting:
    """A make_agent for calibrated_chunks that counts the agents it builds."""

    def __init__(self):
        self.built = 0

    def __call__(self, chunks):
        self.built += 1
        return DDPGAgent(3, 2, -1.0, 1.0, hidden_sizes=(8, 8), seed=0, chunks=chunks)


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    monkeypatch.delenv(threads.ENV_CHUNKS, raising=False)


def test_calibration_is_measured_once_then_cached(tmp_path, two_cpus):
    path = tmp_path / "plans.json"
    make = Counting()
    c1, rec1 = threads.calibrated_chunks(make, "ddpg", 3, 2, (8, 8), 64, np.float32, path)
    assert make.built == 2 and rec1["source"] == "calibrated now" and c1 in (1, 2)
    assert set(rec1["us_per_update"]) == {"1", "2"}
    c2, rec2 = threads.calibrated_chunks(make, "ddpg", 3, 2, (8, 8), 64, np.float32, path)
    assert make.built == 2 and (c2, rec2["source"]) == (c1, str(path))
    # another shape is another entry
    threads.calibrated_chunks(make, "ddpg", 3, 2, (8, 8), 32, np.float32, path)
    assert make.built == 4 and len(json.loads(path.read_text())) == 2


def test_a_large_update_takes_every_cpu_untimed(tmp_path, two_cpus):
    """Wide networks are not calibrated (minutes of updates, every plan's agent alive at once):
    the largest plan, no agent built, nothing cached; the memory check counts that plan."""
    path = tmp_path / "plans.json"
    make = Counting()
    chunks, record = threads.calibrated_chunks(make, "td3", 3, 1, (8192,) * 3, 256, np.float32,
                                               path, macs=6e11)
    assert (chunks, make.built, path.exists()) == (2, 0, False)
    assert "not timed" in record["source"]
    assert threads.largest_plan(256) == 2 and threads.largest_plan(16) == 1


def test_the_memory_check_counts_the_chunks_the_run_can_use(monkeypatch, two_cpus):
    """TD3 with three layers of 8192 (SB3's test of a wide net): the networks' arrays for at most
    2 chunks here (5 + 2 copies of ~403M float32 parameters, ~11 GiB), not for MAX_CHUNKS."""
    from types import SimpleNamespace

    from numddpg.engine.agents import TD3Agent
    from numddpg.training import algorithms
    asked = []
    monkeypatch.setattr(algorithms, "check_memory", lambda n, what: asked.append(n))
    model = SimpleNamespace(dtype="float32", obs_dim=3, act_dim=1, replay_size=1000,
                            hidden_sizes=(8192,) * 3, qf_hidden_sizes=None, chunks=None,
                            agent_class=TD3Agent, n_critics=2, batch_size=256,
                            env_id="Pendulum-v1", n_steps=1)
    algorithms._check_memory(model)
    assert 10 * 2**30 < asked[0] < 12 * 2**30


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"x": 1}', "null"])
def test_a_broken_cache_is_ignored_and_rewritten(tmp_path, two_cpus, content):
    path = tmp_path / "plans.json"
    path.write_text(content)
    make = Counting()
    threads.calibrated_chunks(make, "ddpg", 3, 2, (8, 8), 64, np.float32, path)
    assert make.built == 2
    assert isinstance(json.loads(path.read_text()), dict)


def test_a_doctored_cache_entry_is_not_trusted(tmp_path, two_cpus):
    """A chunk count the candidates do not allow (huge, negative, a string) is re-measured."""
    path = tmp_path / "plans.json"
    make = Counting()
    threads.calibrated_chunks(make, "ddpg", 3, 2, (8, 8), 64, np.float32, path)
    data = json.loads(path.read_text())
    for bad in (10**9, -1, "2", None, [2]):
        data = {k: {**v, "chunks": bad} for k, v in data.items()}
        path.write_text(json.dumps(data))
        chunks, rec = threads.calibrated_chunks(make, "ddpg", 3, 2, (8, 8), 64, np.float32, path)
        assert chunks in (1, 2) and rec["source"] == "calibrated now"


def test_environment_overrides_and_one_cpu_skip_calibration(tmp_path, monkeypatch):
    make = Counting()
    monkeypatch.setenv(threads.ENV_CHUNKS, "3")
    assert threads.calibrated_chunks(make, "ddpg", 3, 2, (8,), 64, "float32", tmp_path / "p")[0] == 3
    monkeypatch.setenv(threads.ENV_CHUNKS, "zero")
    with pytest.raises(ValueError, match=threads.ENV_CHUNKS):
        threads.calibrated_chunks(make, "ddpg", 3, 2, (8,), 64, "float32", tmp_path / "p")
    monkeypatch.delenv(threads.ENV_CHUNKS)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 1)
    assert threads.calibrated_chunks(make, "ddpg", 3, 2, (8,), 64, "float32", tmp_path / "p")[0] == 1
    assert make.built == 0 and not (tmp_path / "p").exists()


class FakeAgent:
    chunks, threads = 2, 2


def feed(guard, agent, multi, single, bursts):
    """Report ``bursts`` bursts timed as ``multi`` on 2 threads and ``single`` on 1; returns the
    thread counts the guard ran them on."""
    ran = []
    for _ in range(bursts):
        ran.append(agent.threads)
        guard.observe(multi if agent.threads == 2 else single)
    return ran


def test_thread_guard_keeps_the_threads_while_they_win():
    agent = FakeAgent()
    guard = threads.ThreadGuard(agent, retry=8)
    ran = feed(guard, agent, multi=0.6, single=1.0, bursts=64)
    assert ran.count(1) <= 3 + 64 // 8 and guard.best == 2       # probes only


def test_thread_guard_drops_to_one_thread_on_a_busy_machine_and_comes_back():
    agent = FakeAgent()
    guard = threads.ThreadGuard(agent, retry=8)
    feed(guard, agent, multi=0.6, single=1.0, bursts=32)
    ran = feed(guard, agent, multi=1.5, single=1.0, bursts=32)   # another process on a core
    assert ran[-16:].count(1) >= 14 and guard.best == 1
    ran = feed(guard, agent, multi=0.6, single=1.0, bursts=80)   # the core is free again
    assert ran[-16:].count(2) >= 14 and guard.best == 2


def test_thread_guard_on_one_chunk_does_nothing():
    agent = FakeAgent()
    agent.chunks = agent.threads = 1
    guard = threads.ThreadGuard(agent)
    assert feed(guard, agent, multi=1.0, single=1.0, bursts=20) == [1] * 20


def test_cached_timings_are_sanitised(tmp_path, two_cpus):
    path = tmp_path / "plans.json"
    threads.calibrated_chunks(Counting(), "ddpg", 3, 2, (8, 8), 64, np.float32, path)
    data = json.loads(path.read_text())
    data = {k: {**v, "us_per_update": {"1": "fast", "2": -5, "3": 1e300, "4": 12.5}}
            for k, v in data.items()}
    path.write_text(json.dumps(data))
    _, rec = threads.calibrated_chunks(Counting(), "ddpg", 3, 2, (8, 8), 64, np.float32, path)
    assert rec["us_per_update"] == {"4": 12.5}


@pytest.mark.parametrize("chunks", [0, 65, 10**9, 2.5, True])
def test_chunks_out_of_range_are_refused_before_allocating(chunks):
    with pytest.raises(ValueError, match="chunks"):
        DDPGAgent(3, 2, -1.0, 1.0, hidden_sizes=(8,), chunks=chunks)


def test_a_failing_thread_stops_the_others_and_its_error_is_raised(rng):
    """Thread 1's kernel raises before it reaches the first barrier: thread 0 must not wait for
    it forever (the abort flag ends its wait) and the error must reach the caller."""
    agent = small_agent(DDPGAgent, chunks=2)
    buf = fake_buffer(rng, agent, capacity=64, size=50)
    real = agent._kernel

    def kernel(me, n, *args):
        if me == 1:
            raise RuntimeError("thread 1 failed")
        return real(me, n, *args)

    agent._kernel = kernel
    with pytest.raises(RuntimeError, match="thread 1 failed"):
        agent.update_burst(buf, 16, 3)
    agent._kernel = real                      # the agent still works afterwards
    assert np.all(np.isfinite(agent.update_burst(buf, 16, 2)))



CACHED_KERNELS = """
import json, numpy as np
from numddpg.engine.agents import DDPGAgent, TD3Agent
out = {}
for Agent, kw in ((DDPGAgent, {}), (TD3Agent, {}), (DDPGAgent, dict(n_critics=3))):
    agent = Agent(3, 1, -1.0, 1.0, hidden_sizes=(4,), seed=0, **kw)
    rng = np.random.default_rng(0)
    agent.update(rng.normal(size=(8, 3)), rng.uniform(-1, 1, (8, 1)), rng.normal(size=8),
                 rng.normal(size=(8, 3)), np.zeros(8))
    stats = agent._kernel.stats
    out[f"{Agent.__name__} {kw}"] = [sum(stats.cache_hits.values()),
                                     sum(stats.cache_misses.values())]
print(json.dumps(out))
"""


def test_a_later_process_loads_the_update_kernels_from_the_cache():
    """The update kernels an agent compiles are saved to Numba's cache and a later process
    loads them (a second) instead of compiling them (several): a kernel whose cache key
    changes between processes (a closure over Numba functions has one) compiled 6-9 s before
    every process's first update (bench/RESULTS.md)."""
    runs = [json.loads(subprocess.run([sys.executable, "-c", CACHED_KERNELS], check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(2)]
    for name, (hits, misses) in runs[1].items():
        assert hits >= 1 and misses == 0, (name, runs)
