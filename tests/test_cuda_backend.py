"""The CUDA backend's generator, without compiling anything: rule coverage, fusion, memory planning, names, markers
and the nvcc driver's parsing (compiling: test_cuda_nvcc.py; running on the CPU emulator: test_cuda_emulator.py)."""

from __future__ import annotations

import json
import re

import pytest
from bmc.backends import cuda
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import nvcc
from bmc.backends.cuda.codegen import FunctionWriter, ModuleWriter
from bmc.backends.cuda.ctext import c_identifier, c_string, comment, literal

import bmc
from tests.conftest import EXAMPLES


def writer(path: str, train: bool = True, **defines) -> FunctionWriter:
    c = bmc.compile(EXAMPLES / path, defines=defines or None).compiled
    graph = c.train_step() if train else c.inference()
    tensors = {v: k for k, v in enumerate(graph.inputs_with_role("param", "state"))}
    return FunctionWriter(ModuleWriter(), graph, tensors)


def item_writing(fn: FunctionWriter, name: str):
    return next(item for item in fn.schedule.items if any(o.name == name for n in item.nodes for o in n.outputs))


def test_adam_update_of_a_parameter_is_one_kernel_in_place():
    fn = writer("mlp.bm")
    item = item_writing(fn, "h.W.new")
    assert item.kind == "group"
    assert len(item.nodes) == 13  # m, v, the bias-corrected step and the new value
    assert {o.name for o in item.outputs} == {"h.W.m", "h.W.v", "h.W.new"}  # every temporary stays in registers
    assert {fn.name(v) for v in item.inputs} == {"v_h_W_grad", "v_adam_m_h_W", "v_adam_v_h_W", "v_h_W", "t31", "t36"}
    assert {fn.plan.storage[o].kind for o in item.outputs} == {"tensor"}  # written over the old values
    assert fn.plan.copies == []  # nothing is copied back at the end of the step


def test_bias_add_and_activation_fuse_and_the_gradient_mask_joins_them():
    fn = writer("residual_mlp.bm", train=False)
    relu = item_writing(fn, "block1")  # x + (relu(x @ W1 + b1) @ W2 + b2): the adds and the relu of one block
    names = [n.op.name for n in relu.nodes]
    assert names.count("add") == 2 and relu.kind == "group"
    hidden = next(i for i in fn.schedule.items if [n.op.name for n in i.nodes] == ["add", "relu"])
    assert len(hidden.outputs) == 1  # the pre-activation sum never reaches memory


def test_cross_entropy_gradient_is_one_kernel_with_the_one_hot_inside():
    fn = writer("mlp.bm")
    item = next(i for i in fn.schedule.items if any(n.op.name == "one_hot" for n in i.nodes))
    assert [n.op.name for n in item.nodes] == ["one_hot", "sub", "mul"]
    assert {v.name for v in item.inputs} == {"probs", "label"}


def test_transients_share_slots_and_relu_runs_in_place():
    fn = writer("mlp.bm", train=False)
    pre, post = item_writing(fn, "h").nodes[0].inputs[0], item_writing(fn, "h").outputs[0]
    assert fn.plan.storage[pre].slot is fn.plan.storage[post].slot
    fn = writer("mlp.bm")
    stored = [v for v, s in fn.plan.storage.items() if s.kind == "slot"]
    assert len(fn.plan.slots) <= len(stored) - 5


def test_generation_is_deterministic():
    model = bmc.compile(EXAMPLES / "lstm.bm", defines={"hidden": 8})
    first, second = cuda_build.program(model), cuda_build.program(model)
    assert first.source == second.source and first.manifest == second.manifest


def test_source_is_readable_and_points_to_the_bm_file():
    source = cuda_build.program(bmc.compile(EXAMPLES / "mlp.bm")).source
    assert "// bmc: " in source and re.search(r"// bmc: \S*examples/mlp.bm:7 \(dense\)", source)
    assert "//   h      = relu(dense(image, hidden))" in source
    assert 'extern "C" int bmc_run(' in source.replace("\n", " ") or "int bmc_run(" in source
    assert "<<<" not in source.replace("kernel<<<(grid)", "")  # launches go through BMC_LAUNCH
    kernels = re.findall(r"__global__ void __launch_bounds__\(\d+\) (\w+)\(", source)
    assert len(kernels) == len(set(kernels))


def test_manifest_describes_functions_and_device_tensors():
    manifest = cuda_build.program(bmc.compile(EXAMPLES / "mlp.bm")).manifest
    functions = {f["name"]: f for f in manifest["functions"]}
    assert list(functions) == ["forward", "train_step", "evaluate", "gradients", "apply"]
    train = functions["train_step"]
    assert [i["name"] for i in train["inputs"]] == ["image", "label"] and train["symbols"] == ["N"]
    assert [o["name"] for o in train["outputs"]] == ["loss", "probs"]
    assert [h["name"] for h in train["hyper"]] == ["lr"]
    tensors = {t["name"]: t for t in manifest["tensors"]}
    assert tensors["h.W"] == {"name": "h.W", "role": "param", "dtype": "f32", "shape": [784, 128],
                              "bytes": 784 * 128 * 4}
    assert tensors["adam.t"]["role"] == "state"
    json.dumps(manifest)


# ---- names and text from the .bm file never become code ------------------------------------------------------------


@pytest.mark.parametrize(("name", "ident"), [
    ("h.W", "v_h_W"), ("adam.m/h.W", "v_adam_m_h_W"), ("int", "v_int"), ("memcpy", "v_memcpy"), ("N", "v_N"),
    ("bmc_ctx", "v_bmc_ctx"), ("9lives", "v_9lives"), ("a-b c", "v_a_b_c"), ("threadIdx", "v_threadIdx"),
    ("__init__", "v_init_"), ("a__b", "v_a_b"),
])
def test_c_identifiers(name, ident):
    assert c_identifier(name) == ident


def test_strings_and_comments_are_escaped():
    assert c_string('a"b\\c\n') == '"a\\"b\\\\c\\012"'
    assert c_string("??/") == '"\\?\\?/"'  # no trigraphs
    assert "\n" not in comment("x\ny") and not comment("trailing \\").endswith("\\")


def test_literals_keep_their_type():
    assert literal(0.9, "f32") == "0.9f" and literal(-1.5, "f64") == "(-1.5)"
    assert literal(float("-inf"), "f32") == "(-INFINITY)" and literal(7, "i64") == "INT64_C(7)"


# ---- the nvcc driver: ptxas statistics, errors mapped to .bm lines, builds without nvcc ------------------------------

PTXAS = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k0_dense_t128' for 'sm_90'
ptxas info    : Function properties for k0_dense_t128
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 98 registers, used 1 barriers, 8448 bytes smem
ptxas info    : Compiling entry function 'k1_relu' for 'sm_90'
ptxas info    : Function properties for k1_relu
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers
"""


def test_ptxas_statistics_are_parsed():
    stats = nvcc.parse_ptxas(PTXAS)
    assert stats["k0_dense_t128"] == {"registers": 98, "stack": 0, "spill_stores": 0, "spill_loads": 0}
    assert nvcc.Compiled(None, stats).spills() == {"k1_relu": stats["k1_relu"]}


def test_nvcc_errors_point_to_the_bm_statement():
    source = "\n".join(["// fixed", "// bmc: model.bm:7 (relu)", "__global__ void k1_relu() {", "  oops;", "}"])
    log = "/tmp/x/model.cu(4): error: identifier \"oops\" is undefined\n1 error detected"
    assert nvcc.explain(log, source) == ("nvcc failed on the code generated for:\n"
                                         '  model.bm:7 (relu): nvcc: model.cu:4: identifier "oops" is undefined')


def test_build_without_nvcc_writes_the_source_or_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: None)
    model = bmc.compile(EXAMPLES / "mlp.bm")
    with pytest.raises(nvcc.NvccError, match="nvcc was not found"):
        cuda_build.build(model, tmp_path / "strict")
    out = cuda_build.build(model, tmp_path / "mlp", require_library=False)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.cu", "params.npz", "state.npz"]
    info = json.loads((out / "manifest.json").read_text())
    assert info["target"] == "cuda" and info["cuda"]["library"] is None and info["cuda"]["arch"] == "sm_90"
    with pytest.raises(bmc.diagnostics.UsageError, match="no compiled library"):
        cuda_build.load(out)


def test_generate_rejects_symbolic_parameters():
    graph = bmc.compile(EXAMPLES / "mlp.bm").compiled.inference()
    assert cuda.persistent_tensors({"f": graph})[0]["shape"] == [784, 128]


@pytest.mark.parametrize("example", sorted(p.stem for p in EXAMPLES.glob("*.bm")))
def test_wrapping_model_cu_changes_only_whitespace_and_comment_breaks(example, monkeypatch):
    """backends/cuda/wrap.py breaks long lines after commas inside parentheses, before `?`, `:`, `&&` and `||`, or
    after an opening parenthesis, opens one-line blocks over lines and continues long comments; the code the
    preprocessor reads is the same, strings included (a literal's text is never a place to break), and no line of
    any example is over 120 characters."""

    from bmc.backends.cuda import wrap

    from tests.test_hostile_names import C_TEXT

    wrapped = cuda_build.program(bmc.compile(EXAMPLES / f"{example}.bm")).source
    monkeypatch.setattr(wrap, "wrap_source", lambda text, width=120: text)
    monkeypatch.setattr(cuda, "wrap_source", lambda text, width=120: text)
    plain = cuda_build.program(bmc.compile(EXAMPLES / f"{example}.bm")).source

    def code(source: str) -> str:  # comments dropped, literals kept, whitespace dropped
        return re.sub(r"\s+", "", C_TEXT.sub(lambda m: m.group() if m.group()[0] in "\"'" else " ", source))

    assert code(wrapped) == code(plain)
    lone_literal = re.compile(r'\s*"([^"\\]|\\.)*",?')  # a string no break can shorten (a long checkout path)
    assert [line for line in wrapped.splitlines() if len(line) > 120 and not lone_literal.fullmatch(line)] == []
    assert not any(line.rstrip().endswith(("\\", "??/")) for line in wrapped.splitlines() if "//" in line)


@pytest.mark.parametrize(("line", "expected"), [
    ("  if (live) for (int r = 0; r < n; r += 32) { const int eo = row * n + r; y[eo] = " + "x" * 80 + "[eo]; }",
     ["  if (live) for (int r = 0; r < n; r += 32) {", "    const int eo = row * n + r;", "    y[eo] = " + "x" * 80
      + "[eo];", "  }"]),
    ('  if (a) { printf("%d; }", ' + "b" * 90 + "); }",  # a ';' or '}' in a literal is not code
     ["  if (a) {", '    printf("%d; }", ' + "b" * 90 + ");", "  }"]),
    ("  return (i >= 0 && i < 28) ? " + "v" * 80 + "[i] : (float)0;",
     ["  return (i >= 0 && i < 28) ? " + "v" * 80 + "[i]", "          : (float)0;"]),
])
def test_wrap_opens_blocks_and_breaks_at_operators(line, expected):
    from bmc.backends.cuda.wrap import wrap_source

    assert wrap_source(line).split("\n") == expected
