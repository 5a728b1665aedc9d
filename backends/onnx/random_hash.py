"""Dropout's random numbers in standard integer ops, equal bit for bit to the NumPy backend's.

The numbers are defined exactly in bmc/ops/random.py (the "lowbias32" hash of each element's index, keyed by the
step's key and the dropout site's salt). Here every value is an int64 below 2^32; a multiplication by a 32-bit
constant of 2^31 or more is split into two 16-bit halves so that no product overflows int64; a right shift is a
division by a power of two (exact for non-negative values), `mod 2^32` a BitwiseAnd.
"""

from __future__ import annotations

from bmc import ops

from .emitter import ONNX_DTYPES, Emitter
from .table import lower

MASK32 = 0xFFFFFFFF


def _mod32(ctx: Emitter, h: str) -> str:
    return ctx.op("BitwiseAnd", h, ctx.const(MASK32, "i64"), hint="hash")


def _mul32(ctx: Emitter, h: str, c: int) -> str:
    """(h * c) mod 2^32 for 0 <= h < 2^32."""
    if c < 2**31:  # h * c < 2^63
        return _mod32(ctx, ctx.op("Mul", h, ctx.const(c, "i64"), hint="hash"))
    low = ctx.op("Mul", h, ctx.const(c & 0xFFFF, "i64"), hint="hash")  # < 2^48
    high = ctx.op("BitwiseAnd", ctx.op("Mul", h, ctx.const(c >> 16, "i64"), hint="hash"), ctx.const(0xFFFF, "i64"))
    return _mod32(ctx, ctx.op("Add", low, ctx.op("Mul", high, ctx.const(1 << 16, "i64"), hint="hash")))


def _xorshift(ctx: Emitter, h: str, bits: int) -> str:
    """h ^ (h >> bits)."""
    return ctx.op("BitwiseXor", h, ctx.op("Div", h, ctx.const(1 << bits, "i64"), hint="hash"), hint="hash")


@lower(ops.RandomUniformLike)
def _random_uniform_like(node, a, ctx):
    x, key = node.inputs
    key_name = a[1] if key.type.dtype == "i64" else ctx.op("Cast", a[1], to=ONNX_DTYPES["i64"])
    # (key mod 2^32) * 0x85EBCA77 + salt * 0xC2B2AE3D, mod 2^32: one number per step and site
    salt_term = (node.op.salt * 0xC2B2AE3D) & MASK32
    offset = _mod32(ctx, ctx.op("Add", _mul32(ctx, _mod32(ctx, key_name), 0x85EBCA77), ctx.const(salt_term, "i64")))
    index = ctx.op("Range", ctx.const(0, "i64"), ctx.op("Size", a[0]), ctx.const(1, "i64"), hint="index")
    h = _mod32(ctx, ctx.op("Add", _mul32(ctx, index, 0x9E3779B1), offset))
    h = _xorshift(ctx, h, 16)
    h = _xorshift(ctx, _mul32(ctx, h, 0x7FEB352D), 15)
    h = _xorshift(ctx, _mul32(ctx, h, 0x846CA68B), 16)
    top24 = ctx.op("Cast", ctx.op("Div", h, ctx.const(256, "i64")), to=ONNX_DTYPES[x.type.dtype])
    u = ctx.op("Mul", top24, ctx.const(1.0 / 16777216, x.type.dtype))
    shape = ctx.shape(x.type.shape) if x.type.is_static else ctx.op("Shape", a[0])
    return ctx.op("Reshape", u, shape)
