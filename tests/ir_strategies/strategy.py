"""The table of op makers and the hypothesis strategy that draws a graph with them."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from tests.ir_strategies.generator import Generator, GraphCase, Spec
from tests.ir_strategies.makers_math import binary, cast, compare, pattern, reduce_, unary_float, unary_number, where
from tests.ir_strategies.makers_nn import (
    batch_norm,
    causal_mask,
    conv,
    dense,
    gather,
    gelu_grad,
    layer_norm,
    loss,
    matmul,
    one_hot,
    random_uniform,
    recurrent,
    scatter_add,
    size_of,
    softmax,
)
from tests.ir_strategies.makers_shape import broadcast, concat, pad_end, reshape, slice_, split, transpose

# ---- drawing graphs ----------------------------------------------------------------------------------------------


def graphs(spec: Spec | None = None) -> st.SearchStrategy[GraphCase]:
    """Graph cases drawn as `spec` allows (by default, everything)."""
    return _graph_case(spec or Spec())


def makers_for(spec: Spec) -> list[Callable[[Generator], None]]:
    return [m for m, continuous, smooth in MAKERS
            if (continuous or not spec.continuous) and (smooth or not spec.smooth)
            and (spec.recurrent or m is not recurrent)
            and (spec.makers is None or m.__name__ in spec.makers)]


@st.composite
def _graph_case(draw, spec: Spec) -> GraphCase:
    gen = Generator(draw, spec)
    gen.start()
    makers = makers_for(spec)
    for _ in range(draw(st.integers(1, spec.max_steps), label="steps")):
        maker = draw(st.sampled_from(makers), label="op")
        maker(gen)
    gen.choose_outputs()
    if spec.backward and draw(st.integers(0, 3), label="backward") == 3:  # (shrinks to no gradients)
        gen.append_gradients()
    return gen.finish()


# (maker, allowed in continuous graphs, allowed in smooth graphs); shrinking prefers the first ones
MAKERS: list[tuple[Callable[[Generator], None], bool, bool]] = [
    (unary_float, True, True),
    (transpose, True, True),
    (binary, True, True),
    (pattern, True, True),
    (unary_number, True, True),
    (reshape, True, True),
    (reduce_, True, True),
    (broadcast, True, True),
    (compare, False, False),
    (where, True, True),
    (cast, True, True),
    (concat, True, True),
    (slice_, True, True),
    (split, True, True),
    (pad_end, True, True),
    (matmul, True, True),
    (dense, True, True),
    (softmax, True, True),
    (loss, True, True),
    (one_hot, True, True),
    (gather, True, True),
    (scatter_add, True, False),  # a gradient op: not differentiable itself
    (size_of, True, True),
    (layer_norm, True, True),
    (batch_norm, True, True),
    (conv, True, True),
    (causal_mask, True, True),
    (gelu_grad, True, True),
    (random_uniform, True, True),
    (recurrent, True, True),
]
