"""A barrier for jitted code running on several Python threads at once (``nogil`` kernels).

The update's threads (numddpg.update, "Row chunks") meet between its stages: every chunk's
gradient must be complete before the Adam step that sums them, and the new parameters before
the next stage reads them.  Each of the n threads owns one slot of ``flags`` (n, 8) int64, one
cache line each so that no two threads write the same line; row n is the abort flag, which the
caller sets when one thread failed, so that the others stop waiting for it.  ``barrier`` stores the thread's
generation count in its slot with release ordering and waits until every slot holds at least
that count, reading them with acquire ordering: whatever a thread wrote before the barrier is
visible to every thread after it, on any CPU.  A waiting thread spins briefly, then yields its
core (sched_yield; SwitchToThread on Windows), so a partner that was descheduled gets to run.

Numba has no atomics, so the two orderings and the yield are three small LLVM intrinsics.

Each slot keeps its thread's count of barriers passed from one kernel call to the next, and a
call starts counting from it: so the caller may return as soon as its own last barrier is
passed (every thread's work is done then) while a helper is still leaving that barrier, and
start the next call at once; the two agree on the generations.  The slots are zeroed only when
no thread is inside: a new thread count (a new ``flags``), or after an abort.

``Helper`` is the thread that runs a chunk kernel beside the caller: a hand-off is one lock
release, and the caller does not wait for the kernel to return (``Helper.wait`` does, for an
abort).
"""
import os
import threading

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..portable import YIELD_SYMBOL

SPINS = 2000          # about 1-4 us of polling before a waiting thread starts yielding


@intrinsic
def store_release(typingctx, flags, i, value):
    """flags[i, 0] = value, with release ordering (flags: 2-D int64, C-contiguous)."""
    sig = types.void(flags, i, value)

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1], zero])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, ordering="release", align=8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def load_acquire(typingctx, flags, i):
    """flags[i, 0], read with acquire ordering."""
    sig = types.int64(flags, i)

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1], zero])
        return builder.load_atomic(ptr, ordering="acquire", align=8)
    return sig, codegen


@intrinsic
def yield_cpu(typingctx):
    """Let the OS run another thread on this core: sched_yield() on POSIX, SwitchToThread() on
    Windows (numddpg.portable.YIELD_SYMBOL)."""
    sig = types.int32()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            YIELD_SYMBOL)
        return builder.call(fn, [])
    return sig, codegen


@njit(cache=True, nogil=True)
def barrier(flags, me, n, generation):
    """Thread ``me`` of ``n`` arrives at barrier number generation + 1 and waits for the others;
    returns generation + 1, or -1 once the abort flag flags[n, 0] is set (the caller then
    returns).  With n == 1 it returns at once."""
    generation += 1
    if n == 1:
        return generation
    store_release(flags, me, generation)
    for other in range(n):
        spins = 0
        while load_acquire(flags, other) < generation:
            if load_acquire(flags, n) != 0:
                return -1
            spins += 1
            if spins > SPINS:
                yield_cpu()
    return generation


class Helper:
    """A daemon thread that runs one job at a time beside the caller.

    ``start(fn, *args)`` hands it a job and returns at once (after the previous job has
    returned); ``wait()`` waits for the current job to return and gives its exception or None.
    Two locks and no Future or queue: on the 2-core VM a one-update burst of a tiny network
    on two threads took ~143 us this way against ~210 us with concurrent.futures' submit and
    a wait for every Future (bench/RESULTS.md, "Hand-off")."""

    def __init__(self):
        self._go = threading.Lock()
        self._go.acquire()                 # released by start: a job is there
        self._free = threading.Lock()      # held from start until the job has returned
        self._job = None
        self._error = None
        threading.Thread(target=self._serve, daemon=True, name="numddpg-chunk").start()

    def _serve(self):
        while True:
            self._go.acquire()
            fn, args = self._job
            self._job = None
            try:
                fn(*args)
            except BaseException as e:     # (kept for wait(); the job also flags the abort)
                self._error = e
            finally:
                del fn, args               # (holds no agent's arrays between jobs)
                self._free.release()

    def start(self, fn, *args):
        self._free.acquire()
        self._job = (fn, args)
        self._go.release()

    def wait(self):
        self._free.acquire()
        self._free.release()
        error, self._error = self._error, None
        return error


_HELPERS = {"pid": None, "threads": []}
_HELPERS_LOCK = threading.Lock()


def helpers(n):
    """n Helper threads of this process, started on first use (and anew in a forked child,
    which inherits none of its parent's threads)."""
    with _HELPERS_LOCK:
        if _HELPERS["pid"] != os.getpid():
            _HELPERS["pid"], _HELPERS["threads"] = os.getpid(), []
        threads = _HELPERS["threads"]
        while len(threads) < n:
            threads.append(Helper())
        return threads[:n]


def run_threads(kernel, n, flags, args):
    """``kernel(me, n, *args)`` on threads 0..n-1: 0 is this one, 1.. are ``helpers``, each
    running the same nogil kernel.  This thread returns when its kernel does: its last
    barrier means every thread's work is done.  A thread that raises sets the abort flag
    (``flags[n]``), so that the others stop at their next barrier instead of waiting for it;
    then all are waited for, the flags zeroed, and the error raised here."""
    def run(me):
        try:
            kernel(me, n, *args)
        except BaseException:
            flags[n, 0] = 1
            raise

    others = helpers(n - 1)
    for me, helper in enumerate(others, 1):
        helper.start(run, me)
    try:
        run(0)
    except BaseException:
        _settle(others, flags)
        raise
    if flags[n, 0] != 0:
        errors = [e for e in _settle(others, flags) if e is not None]
        raise errors[0]


def _settle(others, flags):
    """After an abort: wait for every helper's kernel to return, zero the flags (no thread is
    inside now) and return the helpers' exceptions."""
    errors = [helper.wait() for helper in others]
    flags[:] = 0
    return errors
