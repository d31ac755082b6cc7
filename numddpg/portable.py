"""What differs between POSIX and Windows, chosen once when this module loads.

    YIELD_SYMBOL   the C function a spinning thread calls to give up its core: sched_yield
                   (POSIX) or SwitchToThread (Windows, kernel32); both take no argument and
                   return a 32-bit int.  numddpg.kernels.sync's barrier calls it.
    lock_file(fd)  take an exclusive, non-blocking lock on an open file, or raise
                   BlockingIOError if another process holds it: fcntl.flock on POSIX,
                   msvcrt.locking on a byte beyond any content on Windows.  The operating
                   system drops either lock when its process dies, however it dies.
                   LOCKING names the mechanism ("flock", "msvcrt" or "none": then nothing is
                   locked, and RunLock warns once).

Each choice is a function of the platform's modules, so tests on Linux exercise the Windows
branches by handing them a stand-in module (tests/test_portable.py).
"""
import importlib
import sys

LOCK_OFFSET = 1 << 30          # msvcrt locks a byte range: one past anything a lock file holds


def yield_symbol(platform=sys.platform):
    """The name of the yield function on ``platform`` (a sys.platform value)."""
    return "SwitchToThread" if platform == "win32" else "sched_yield"


def _module(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def file_locker(fcntl=None, msvcrt=None):
    """(name, lock_file) for the modules given: fcntl's flock if there is fcntl, else msvcrt's
    locking, else ("none", a function that locks nothing)."""
    if fcntl is not None:
        def lock_file(fd):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return "flock", lock_file
    if msvcrt is not None:
        import os

        def lock_file(fd):
            end = os.lseek(fd, 0, os.SEEK_CUR)
            os.lseek(fd, LOCK_OFFSET, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError as exc:
                raise BlockingIOError(*exc.args) from None
            finally:
                os.lseek(fd, end, os.SEEK_SET)
        return "msvcrt", lock_file
    return "none", lambda fd: None


YIELD_SYMBOL = yield_symbol()
LOCKING, lock_file = file_locker(_module("fcntl"), _module("msvcrt"))
