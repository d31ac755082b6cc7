"""numddpg.portable: the yield symbol and the run lock of each platform, the Windows and
no-lock branches exercised here on Linux with stand-in modules; and the matrix products' path
on a CPU without AVX2 (BLAS everywhere), compiled in a fresh process that sees no AVX2."""
import os
import subprocess
import sys
import textwrap

import pytest

from numddpg import portable
from numddpg.files import rundir
from numddpg.files.rundir import RunDirBusy, RunLock


def test_the_yield_is_the_platforms():
    assert portable.yield_symbol("linux") == "sched_yield"
    assert portable.yield_symbol("darwin") == "sched_yield"
    assert portable.yield_symbol("win32") == "SwitchToThread"
    if sys.platform.startswith("linux"):
        assert portable.YIELD_SYMBOL == "sched_yield" and portable.LOCKING == "flock"


class FakeMsvcrt:
    """msvcrt.locking's contract: a byte range locked through one descriptor cannot be locked
    through another (OSError) until that descriptor is closed."""
    LK_NBLCK = 2

    def __init__(self):
        self.held = {}                                # (inode, offset) -> fd

    def locking(self, fd, mode, nbytes):
        assert mode == self.LK_NBLCK and nbytes == 1
        key = (os.fstat(fd).st_ino, os.lseek(fd, 0, os.SEEK_CUR))
        holder = self.held.get(key)
        if holder is not None and holder != fd and _open(holder):
            raise OSError(36, "Resource deadlock avoided")
        self.held[key] = fd


def _open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_the_windows_lock_refuses_a_second_holder_and_keeps_the_pid_readable(tmp_path,
                                                                             monkeypatch):
    fake = FakeMsvcrt()
    name, lock_file = portable.file_locker(fcntl=None, msvcrt=fake)
    assert name == "msvcrt"
    monkeypatch.setattr(rundir, "LOCKING", name)
    monkeypatch.setattr(rundir, "lock_file", lock_file)
    first = RunLock(tmp_path).acquire()
    assert list(fake.held)[0][1] == portable.LOCK_OFFSET      # beyond the PID it writes
    with pytest.raises(RunDirBusy, match=str(os.getpid())):
        RunLock(tmp_path).acquire()
    first.release()
    RunLock(tmp_path).acquire().release()


def test_without_any_lock_the_run_lock_says_so(tmp_path, monkeypatch):
    name, lock_file = portable.file_locker(fcntl=None, msvcrt=None)
    assert name == "none" and lock_file(0) is None
    monkeypatch.setattr(rundir, "LOCKING", name)
    with pytest.warns(RuntimeWarning, match="not locked"):
        lock = RunLock(tmp_path).acquire()
    assert not lock.held and not (tmp_path / rundir.LOCK_FILE).exists()


NO_AVX2 = textwrap.dedent("""
    import llvmlite.binding as llvm
    real = llvm.get_host_cpu_features
    def without_avx2():
        features = real()
        features["avx2"] = False
        return features
    llvm.get_host_cpu_features = without_avx2
    import numpy as np
    import numddpg
    from numddpg.kernels import gemm
    assert not gemm.HAS_AVX2_FMA
    rng = np.random.default_rng(0)
    for M, K, N in [(64, 3, 64), (64, 64, 64), (100, 32, 8)]:      # shapes tiles would take
        a, b = rng.standard_normal((M, K), np.float32), rng.standard_normal((K, N), np.float32)
        out = np.empty((M, N), np.float32)
        assert not gemm.use_tiles(M, K, 4, False)
        gemm.matmul(a, b, out)
        assert np.array_equal(out, a @ b)
    model = numddpg.DDPG("Pendulum-v1", hidden_sizes=(64, 64), log=False, seed=0,
                         start_steps=100, update_after=100, num_test_episodes=0)
    model.learn(300, progress_bar=False)
    assert np.isfinite(model.agent.actor.params).all()
    print("ok")
""")


def test_a_cpu_without_avx2_multiplies_by_blas_and_trains(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", NO_AVX2], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
