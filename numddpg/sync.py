"""A barrier for jitted code running on several Python threads at once (``nogil`` kernels).

The update's threads (numddpg.update, "Row chunks") meet between its stages: every chunk's
gradient must be complete before the Adam step that sums them, and the new parameters before
the next stage reads them.  Each of the n threads owns one slot of ``flags`` (n, 8) int64, one
cache line each so that no two threads write the same line; row n is the abort flag, which the
caller sets when one thread failed, so that the others stop waiting for it.  ``barrier`` stores the thread's
generation count in its slot with release ordering and waits until every slot holds at least
that count, reading them with acquire ordering: whatever a thread wrote before the barrier is
visible to every thread after it, on any CPU.  A waiting thread spins briefly, then yields its
core (sched_yield), so a partner that was descheduled gets to run.

Numba has no atomics, so the two orderings and the yield are three small LLVM intrinsics.
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

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
    """sched_yield(): let the OS run another thread on this core."""
    sig = types.int32()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            "sched_yield")
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
