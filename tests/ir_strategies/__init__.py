"""Random well-typed IR graphs, as hypothesis strategies, for property tests of passes and backends.

`graphs(spec)` draws a `GraphCase`: a graph built through `bmc.ir.graph.Builder` (so every type comes from the op's
shape rule; an op whose rule raises `TypeError_` is simply not emitted) and feeds for its inputs. Graphs mix symbolic
dims (N, T) and static ones, f32/f64/i64/bool values, square shapes such as [N, 8, 8] and [4, 4], inputs of every
role, and the op patterns the passes look for (x * 1, -(-x), reshape chains, transposes whose output type equals
their input type, casts to the same dtype, ...).

Values stay in safe ranges: every value carries a bound [lo, hi] (interval arithmetic over the ops), an operand that
would overflow an op is squashed by tanh first, and log, sqrt, division and pow read positive values (abs(x) + 1 or
exp(x), or x * x + 1 where the graph must be smooth). Comparisons then mean something, and NaN appears only where
an op defines it.

`Spec` says what a property may draw: `continuous` leaves out what rounding can flip (comparisons, sign, casts of
floats to integers), for passes and backends that change the arithmetic; `smooth` also leaves out kinks (relu, abs,
max, ...) and conditions computed from parameters, for gradient checks against finite differences.

Modules: `generator` (the drawing state: inputs, value bounds, outputs, feeds), the op makers by kind
(`makers_math`, `makers_shape`, `makers_nn`), `strategy` (the maker table and `graphs`), and `compare`: what the
properties share besides graphs, the reference evaluation (`reference`), the scale of each output (`output_scales`:
the largest magnitude and the least precise dtype of the values it is computed from) and `assert_close`.
"""

from tests.ir_strategies.compare import Scale, assert_close, output_scales, reference
from tests.ir_strategies.generator import GraphCase, Spec
from tests.ir_strategies.strategy import MAKERS, graphs

__all__ = ["MAKERS", "GraphCase", "Scale", "Spec", "assert_close", "graphs", "output_scales", "reference"]
