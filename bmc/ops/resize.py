"""Resizing NCHW images with static spatial dims, exactly as ONNX Resize (modes nearest and linear).

Each spatial axis is resized on its own by a constant interpolation matrix A [out, in] (row o holds the weights of
the input pixels output pixel o reads: one 1 for nearest, two weights for linear), so y = A_h x A_wᵀ per image
plane, and the gradient is the transpose, A_hᵀ g A_w: `ResizeGrad`, whose own gradient is `Resize` again. The
matrices are never stored in the IR: the attributes determine them (bmc/reference/kernels.py `_resize_taps` is the
reference definition; the CUDA rule computes the same taps per element in double precision).

An output position o maps to the input coordinate `coordinates` gives (ONNX's coordinate_transformation_mode):
half_pixel (o + 0.5) / scale - 0.5; pytorch_half_pixel the same, or 0 for an output of one pixel; align_corners
o (in - 1) / (out - 1); asymmetric o / scale. `scale` is the one given, or out / in when a size is. Nearest rounds
the coordinate by `nearest` (round_prefer_floor, round_prefer_ceil, floor, ceil) and clamps it to the image; linear
clamps it to [0, in - 1] and weighs its two neighbours (ONNX's edge padding, PyTorch's bilinear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.flops import NONE, Flops, Poly
from bmc.ir.types import TensorType, TypeError_
from bmc.ops.base import Op

__all__ = ["Resize", "ResizeGrad"]

MODES = ("nearest", "linear")
COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@dataclass(frozen=True)
class _Interpolation(Op):
    size: tuple[int, int]  # the resized (output) height and width
    scale: tuple[float, float]  # the coordinate transform's scale per axis
    mode: str = "nearest"
    coordinates: str = "half_pixel"
    nearest: str = "round_prefer_floor"

    def check(self, x: TensorType, what: str) -> None:
        if x.rank != 4 or not x.is_float or not all(isinstance(d, int) for d in x.shape[2:]):
            raise TypeError_(f"{what} expects a float image batch [N, C, H, W] with static H and W, got {x}")
        if self.mode not in MODES or self.coordinates not in COORDINATES or self.nearest not in NEAREST:
            raise TypeError_(f"{what}: unknown mode {self.mode}, coordinates {self.coordinates} or nearest "
                             f"{self.nearest}")
        if min(self.size) < 1 or min(self.scale) <= 0:
            raise TypeError_(f"{what}: sizes {list(self.size)} and scales {list(self.scale)} must be positive")

    def _cost(self, elements: Poly, linear_per: int, nearest_per: int) -> Flops:
        per = linear_per if self.mode == "linear" else nearest_per
        return Flops(other=elements * per) if per else NONE


@dataclass(frozen=True)
class Resize(_Interpolation):
    """[N, C, H, W] -> [N, C, *size]: y = A_h x A_wᵀ for each image plane."""

    name: ClassVar[str] = "resize"

    def infer(self, x: TensorType) -> TensorType:
        self.check(x, "resize")
        return x.with_shape((*x.shape[:2], *self.size))

    def flops(self, inputs, outputs):  # linear: four weighted taps an output element; nearest copies
        return self._cost(Poly.elements(outputs[0].shape), 8, 0)

    def vjp(self, b, node, grads):
        x = node.inputs[0]
        return (b.emit(ResizeGrad(self.size, self.scale, self.mode, self.coordinates, self.nearest,
                                  x.type.shape[2:]), grads[0]),)


@dataclass(frozen=True)
class ResizeGrad(_Interpolation):
    """The gradient of `resize` (the transposed interpolation): g [N, C, *size] -> [N, C, *input_size],
    A_hᵀ g A_w. It is linear, and its gradient is `resize` with the same attributes."""

    name: ClassVar[str] = "resize_grad"
    input_size: tuple[int, int] = (1, 1)

    def infer(self, g: TensorType) -> TensorType:
        self.check(g, "resize_grad")
        if tuple(g.shape[2:]) != tuple(self.size):
            raise TypeError_(f"resize_grad: {g} is not of the resized size {list(self.size)}")
        return g.with_shape((*g.shape[:2], *self.input_size))

    def flops(self, inputs, outputs):  # each resized element's share sent back to its taps
        return self._cost(Poly.elements(inputs[0].shape), 8, 1)

    def vjp(self, b, node, grads):
        return (b.emit(Resize(self.size, self.scale, self.mode, self.coordinates, self.nearest), grads[0]),)
