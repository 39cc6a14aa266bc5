"""The one place that configures Numba for exmc's library kernels, and the model call by address.

``call_model`` lets a sampler compiled once call any model's generated C entry
point (``logp_grad_c``) through its address, as nutpie calls a Numba-compiled
log-density: a new model compiles only its own small function, never the sampler.
"""
from llvmlite import ir
from numba import njit as _numba_njit
from numba import types
from numba.extending import intrinsic


def njit(fn=None, **options):
    """numba.njit with exmc's defaults: cached on disk, numpy error model, no fastmath.

    Kernels are inlined into their callers at Numba's IR level: the sampler passes
    tuples of many arrays around, and a real call costs a reference-count update
    per array (inlining halved the sampler's time per leapfrog step).
    """
    options = {"cache": True, "error_model": "numpy", "inline": "always", **options}
    return _numba_njit(**options) if fn is None else _numba_njit(**options)(fn)


@intrinsic
def call_model(typingctx, address, x, data, grad, logp_out):
    """status = model(x, data, grad, logp_out) for the C function at integer ``address``.

    The arrays must be contiguous float64; the function writes the gradient into
    ``grad`` and the log density into ``logp_out[0]`` and returns a status code.
    """
    sig = types.int64(address, x, data, grad, logp_out)

    def codegen(context, builder, signature, args):
        pointers = [context.make_array(ty)(context, builder, val).data
                    for ty, val in zip(signature.args[1:], args[1:])]
        double_ptr = ir.DoubleType().as_pointer()
        fnty = ir.FunctionType(ir.IntType(64), [double_ptr] * 4)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(fn, pointers)

    return sig, codegen


def kernel(fn):
    """numba.njit for the scalar and family kernels that generated model code calls.

    Not inlined at Numba's IR level: a model calls a kernel at many places (one per
    scalar variable, say), and IR inlining copies the kernel into each, which made
    compile time grow far faster than the model.  LLVM still inlines small calls.
    ``arcp`` lets LLVM turn a division by a parameter into a product with its
    reciprocal, which it then hoists out of a model's loop over observations (a
    Normal likelihood of 20,000 rows: 58 -> 22 us per gradient); results move by
    at most an ulp or so, and NaN and infinity handling is unchanged.
    """
    return njit(fn, inline="never", fastmath={"arcp"})
