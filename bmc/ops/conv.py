"""Convolution and pooling over NCHW images (ONNX's layout), with their gradient ops.

Spatial dims must be static; the batch may be symbolic. `padding` is (top, left, bottom, right). A convolution with
`groups` G splits the C input and O output channels into G groups, each convolved on its own (weights
[O, C / G, kh, kw], as ONNX and PyTorch; G = C is a depthwise convolution). A transposed convolution (ONNX
ConvTranspose) is `Conv2dGradInput`: the gradient of a convolution with respect to its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir import dims
from bmc.ir.flops import Flops, Poly
from bmc.ir.types import TensorType, TypeError_
from bmc.ops import emit as E
from bmc.ops.base import Op

__all__ = [  # the ops, which bmc.ops re-exports
    "AvgPool2d", "AvgPool2dGrad", "Conv2d", "Conv2dGradInput", "Conv2dGradWeight", "MaxPool2d", "MaxPool2dGrad",
]

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]


def out_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> int:
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Padding so the output has ceil(size / stride) positions; the extra pixel goes after (as ONNX SAME_UPPER)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Window:
    """The sliding-window attributes shared by convolution and pooling."""

    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pads = (0, 0, 0, 0)
    dilation: Pair = (1, 1)

    def spatial_out(self, x: TensorType) -> tuple[int, int]:
        h, w = x.shape[2], x.shape[3]
        if not isinstance(h, int) or not isinstance(w, int):
            raise TypeError_(f"spatial dims must be static, got {x}")
        oh = out_size(h, self.kernel[0], self.stride[0], self.padding[0], self.padding[2], self.dilation[0])
        ow = out_size(w, self.kernel[1], self.stride[1], self.padding[1], self.padding[3], self.dilation[1])
        if oh < 1 or ow < 1:
            raise TypeError_(f"a {self.kernel[0]}x{self.kernel[1]} window does not fit {x} with this padding")
        return oh, ow


def _correlation(out: TensorType, channels, kernel: Pair) -> Poly:
    """A multiply-add per output element and window element (of `channels` input channels): convolution and both of
    its gradients, as PyTorch's FlopCounterMode counts them."""
    return 2 * Poly.elements(out.shape) * Poly.elements((channels, *kernel))


def _windows(out: TensorType, kernel: Pair) -> Flops:
    """One FLOP per output element and window element (pooling and its gradients)."""
    return Flops(other=Poly.elements(out.shape) * Poly.elements(kernel))


def _image(x: TensorType, what: str) -> None:
    if x.rank != 4 or not x.is_float:
        raise TypeError_(f"{what} expects a float image batch [N, C, H, W], got {x}")


def _groups(what: str, groups: int, channels, out_channels) -> None:
    """Both channel counts must split into `groups` equal groups."""
    if groups < 1:
        raise TypeError_(f"{what}: groups must be a positive integer, got {groups}")
    for n, which in ((channels, "input"), (out_channels, "output")):
        if not isinstance(n, int) or n % groups:
            raise TypeError_(f"{what}: {n} {which} channels do not split into {groups} groups")


@dataclass(frozen=True)
class Conv2d(Op):
    """y = conv(x, w) + b: x [N, C, H, W], w [O, C / groups, kh, kw], b [O] -> [N, O, H', W'] (cross-correlation,
    as ONNX); output channel o reads the input channels of its group, o // (O / groups)."""

    name: ClassVar[str] = "conv2d"
    stride: Pair = (1, 1)
    padding: Pads = (0, 0, 0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1

    def window(self, w: TensorType) -> Window:
        return Window((w.shape[2], w.shape[3]), self.stride, self.padding, self.dilation)

    def infer(self, x: TensorType, w: TensorType, b: TensorType) -> TensorType:
        _image(x, "conv2d")
        if w.rank == 4:
            _groups("conv2d", self.groups, x.shape[1], w.shape[0])
        if w.rank != 4 or w.shape[1] * self.groups != x.shape[1] or b.shape != (w.shape[0],):
            per_group = x.shape[1] // self.groups if isinstance(x.shape[1], int) else x.shape[1]
            raise TypeError_(f"conv2d: weights {w} and bias {b} do not fit input {x} (expected [O, {per_group}, "
                             "kh, kw] and [O])")
        if not (x.dtype == w.dtype == b.dtype):
            raise TypeError_(f"conv2d: dtypes of {x}, {w} and {b} differ")
        oh, ow = self.window(w).spatial_out(x)
        return x.with_shape((x.shape[0], w.shape[0], oh, ow))

    def flops(self, inputs, outputs):  # the correlation, then the bias
        w, (out,) = inputs[1], outputs
        return Flops(matmul=_correlation(out, w.shape[1], w.shape[2:]), other=Poly.elements(out.shape))

    def working_set(self, x: TensorType, w: TensorType, b: TensorType) -> tuple[TensorType, ...]:
        # computed as one matrix product: every window of the input unfolded, [N, C kh kw, H' W']
        oh, ow = self.window(w).spatial_out(x)
        return (x.with_shape((x.shape[0], dims.product([x.shape[1], w.shape[2], w.shape[3]]), dims.product([oh, ow]))),)

    def vjp(self, b, node, grads):
        (x, w, _), g = node.inputs, grads[0]
        gx = b.emit(Conv2dGradInput(self.stride, self.padding, self.dilation, x.type.shape[2:], self.groups), g, w)
        gw = b.emit(Conv2dGradWeight(self.stride, self.padding, self.dilation, w.type.shape[2:], self.groups), x, g)
        return gx, gw, E.sum_(b, g, (0, 2, 3))


@dataclass(frozen=True)
class Conv2dGradInput(Op):
    """The gradient of conv2d with respect to its input: g [N, O, H', W'], w [O, C / groups, kh, kw] ->
    [N, C, *input_size]. It is also the transposed convolution (ONNX ConvTranspose, whose weights [C_in, O / groups,
    kh, kw] are these with C_in = O), so it is differentiable: its gradients are a convolution and a weight
    gradient."""

    name: ClassVar[str] = "conv2d_grad_input"
    stride: Pair
    padding: Pads
    dilation: Pair
    input_size: Pair
    groups: int = 1

    def infer(self, g: TensorType, w: TensorType) -> TensorType:
        _image(g, "conv_transpose2d")
        if w.rank != 4 or w.shape[0] != g.shape[1] or w.dtype != g.dtype:
            raise TypeError_(f"conv_transpose2d: weights {w} do not fit input {g} (expected [{g.shape[1]}, "
                             "O / groups, kh, kw])")
        _groups("conv_transpose2d", self.groups, g.shape[1], w.shape[1] * self.groups)
        window = Window((w.shape[2], w.shape[3]), self.stride, self.padding, self.dilation)
        if window.spatial_out(g.with_shape((*g.shape[:2], *self.input_size))) != tuple(g.shape[2:]):
            raise TypeError_(f"conv_transpose2d: an output of {list(self.input_size)} pixels does not convolve back "
                             f"to the input's {list(g.shape[2:])} (is output_padding smaller than the stride?)")
        return g.with_shape((g.shape[0], w.shape[1] * self.groups, *self.input_size))

    def flops(self, inputs, outputs):
        g, w = inputs
        return Flops(matmul=_correlation(g, w.shape[1], w.shape[2:]))

    def vjp(self, b, node, grads):
        # <conv_t(g, w), dy> = <g, conv(dy, w)>: the input's gradient is a convolution of dy, the weights' the
        # convolution's weight gradient with the roles of input and output swapped
        (g, w), dy = node.inputs, grads[0]
        zero = E.broadcast_to(b, E.like(b, 0.0, dy), (w.type.shape[0],))
        dg = b.emit(Conv2d(self.stride, self.padding, self.dilation, self.groups), dy, w, zero)
        dw = b.emit(Conv2dGradWeight(self.stride, self.padding, self.dilation, w.type.shape[2:], self.groups), dy, g)
        return dg, dw


@dataclass(frozen=True)
class Conv2dGradWeight(Op):
    """The gradient of conv2d with respect to its weights: correlate the input's windows with g."""

    name: ClassVar[str] = "conv2d_grad_weight"
    differentiable: ClassVar[bool] = False
    stride: Pair
    padding: Pads
    dilation: Pair
    kernel: Pair
    groups: int = 1

    def infer(self, x: TensorType, g: TensorType) -> TensorType:
        _groups("conv2d_grad_weight", self.groups, x.shape[1], g.shape[1])
        return x.with_shape((g.shape[1], x.shape[1] // self.groups, *self.kernel))

    def flops(self, inputs, outputs):
        x, g = inputs
        return Flops(matmul=_correlation(g, x.shape[1] // self.groups, self.kernel))


@dataclass(frozen=True)
class MaxPool2d(Op):
    name: ClassVar[str] = "max_pool2d"
    kernel: Pair
    stride: Pair
    padding: Pads = (0, 0, 0, 0)

    def infer(self, x: TensorType) -> TensorType:
        _image(x, "max_pool")
        oh, ow = Window(self.kernel, self.stride, self.padding).spatial_out(x)
        return x.with_shape((*x.shape[:2], oh, ow))

    def flops(self, inputs, outputs):
        return _windows(outputs[0], self.kernel)

    def vjp(self, b, node, grads):  # to the first maximum of each window
        return (b.emit(MaxPool2dGrad(self.kernel, self.stride, self.padding), node.inputs[0], grads[0]),)


@dataclass(frozen=True)
class MaxPool2dGrad(Op):
    name: ClassVar[str] = "max_pool2d_grad"
    differentiable: ClassVar[bool] = False
    kernel: Pair
    stride: Pair
    padding: Pads

    def infer(self, x: TensorType, g: TensorType) -> TensorType:
        return x

    def flops(self, inputs, outputs):  # each window's maximum found again
        return _windows(inputs[1], self.kernel)


@dataclass(frozen=True)
class AvgPool2d(Op):
    """The mean of each window; padded positions are not counted (ONNX's count_include_pad = 0)."""

    name: ClassVar[str] = "avg_pool2d"
    kernel: Pair
    stride: Pair
    padding: Pads = (0, 0, 0, 0)

    def infer(self, x: TensorType) -> TensorType:
        _image(x, "avg_pool")
        oh, ow = Window(self.kernel, self.stride, self.padding).spatial_out(x)
        return x.with_shape((*x.shape[:2], oh, ow))

    def flops(self, inputs, outputs):
        return _windows(outputs[0], self.kernel)

    def vjp(self, b, node, grads):
        x = node.inputs[0]
        return (b.emit(AvgPool2dGrad(self.kernel, self.stride, self.padding, x.type.shape[2:]), grads[0]),)


@dataclass(frozen=True)
class AvgPool2dGrad(Op):
    name: ClassVar[str] = "avg_pool2d_grad"
    differentiable: ClassVar[bool] = False
    kernel: Pair
    stride: Pair
    padding: Pads
    input_size: Pair

    def infer(self, g: TensorType) -> TensorType:
        return g.with_shape((*g.shape[:2], *self.input_size))

    def flops(self, inputs, outputs):
        return _windows(inputs[0], self.kernel)
