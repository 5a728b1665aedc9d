"""The cost report (bmc/cost.py): FLOPs against PyTorch's own counter on the same models written in PyTorch,
parameter and state bytes against a build's arrays, formulas in the batch dim, the text and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bmc
from bmc.cli import main
from bmc.cost import cost_report
from bmc.diagnostics import UsageError
from bmc.ir.flops import Poly

EXAMPLES = Path(__file__).parent.parent / "examples"
BATCH = 2  # FLOPs are linear in the batch: a small one keeps PyTorch quick


def report(name: str, batch: int | None = None):
    return cost_report(bmc.compile(EXAMPLES / f"{name}.bm"), batch)


# ---- the same models in PyTorch (read off examples/*.bm) --------------------------------------------------------


def torch_model(name: str):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Vit(nn.Module):  # examples/vit.bm: 28 tokens of 28 features, width 64, 4 heads, 2 pre-norm blocks
        def __init__(self, tokens=28, features=28, width=64, heads=4, blocks=2, classes=10):
            super().__init__()
            self.embed = nn.Linear(features, width)
            self.positions = nn.Parameter(torch.zeros(tokens, width))
            self.heads = heads
            self.blocks = nn.ModuleList(nn.ModuleDict({
                "norm1": nn.LayerNorm(width), "q": nn.Linear(width, width), "k": nn.Linear(width, width),
                "v": nn.Linear(width, width), "out": nn.Linear(width, width), "norm2": nn.LayerNorm(width),
                "up": nn.Linear(width, 2 * width), "down": nn.Linear(2 * width, width)}) for _ in range(blocks))
            self.norm = nn.LayerNorm(width)
            self.head = nn.Linear(width, classes)

        def forward(self, rows):
            x = self.embed(rows) + self.positions
            n, t, d = x.shape
            for b in self.blocks:
                y = b["norm1"](x)
                q, k, v = (b[p](y).reshape(n, t, self.heads, -1).transpose(1, 2) for p in "qkv")
                scores = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)
                a = x + b["out"]((scores @ v).transpose(1, 2).reshape(n, t, d))
                x = a + b["down"](nn.functional.gelu(b["up"](b["norm2"](a))))
            return self.head(self.norm(x.mean(dim=1)))

    class Lstm(nn.Module):  # examples/lstm.bm: its last state classifies
        def __init__(self):
            super().__init__()
            self.cell = nn.LSTMCell(28, 128)  # stepped here: FlopCounterMode does not see inside a whole nn.LSTM
            self.head = nn.Linear(128, 10)

        def forward(self, rows):
            h = c = rows.new_zeros(rows.shape[0], 128)
            for t in range(rows.shape[1]):
                h, c = self.cell(rows[:, t], (h, c))
            return self.head(h)

    models = {
        "mlp": (nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)), (BATCH, 784)),
        "cnn": (nn.Sequential(nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10)),
                (BATCH, 1, 28, 28)),
        "lstm": (Lstm(), (BATCH, 28, 28)),
        "vit": (Vit(), (BATCH, 28, 28)),
    }
    return models[name]


def torch_flops(name: str, train: bool) -> int:
    """What FlopCounterMode counts for a forward pass (or, `train`, a forward and backward pass of the loss)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    model, shape = torch_model(name)
    model.train(train)
    x = torch.randn(*shape)
    label = torch.zeros(shape[0], dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        if train:
            torch.nn.functional.cross_entropy(model(x), label).backward()
        else:
            with torch.no_grad():
                torch.softmax(model(x), dim=-1)
    return counter.get_total_flops()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "vit"])
def test_forward_flops_match_pytorch(name):
    r = report(name, BATCH)
    ours = r.at_batch(r.inference.matmul).value
    theirs = torch_flops(name, train=False)
    assert ours == pytest.approx(theirs, rel=0.01), (ours, theirs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "vit"])
def test_train_step_flops_match_pytorch(name):
    """Forward and backward. The LSTM's train step also computes the gradient with respect to its initial state
    (zeros, of which PyTorch asks no gradient): one [N, 4H] x [4H, H] product more."""
    r = report(name, BATCH)
    assert r.train_step is not None
    ours = r.at_batch(r.train_step.matmul).value
    theirs = torch_flops(name, train=True)
    if name == "lstm":
        theirs += 2 * BATCH * 4 * 128 * 128
    assert ours == pytest.approx(theirs, rel=0.01), (ours, theirs)


# ---- bytes against a build ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_parameter_and_state_bytes_are_the_builds(name, tmp_path):
    model = bmc.compile(EXAMPLES / f"{name}.bm")
    out = model.build(tmp_path / name, "numpy")
    r = cost_report(model)
    with np.load(out / "params.npz") as params, np.load(out / "state.npz") as state:
        assert r.param_bytes == sum(params[k].nbytes for k in params.files)
        assert r.state_bytes == sum(state[k].nbytes for k in state.files)


# ---- formulas ----------------------------------------------------------------------------------------------------


def test_mlp_by_hand():
    """Dense 784 -> 128, relu, dense 128 -> 10, softmax: 2*784*128 + 2*128*10 multiply-adds, the biases, the relu
    and a softmax of 5 FLOPs per logit (max, subtract, exp, sum, divide)."""
    r = report("mlp")
    assert r.batch_symbol == "N" and r.batch == 64  # the train block's batch
    assert r.inference.matmul == Poly.dim("N") * (2 * 784 * 128 + 2 * 128 * 10)
    assert r.inference.total == Poly.dim("N") * (203_264 + 128 + 10 + 128 + 5 * 10)
    assert [(s.name, s.line, str(s.output), s.params) for s in r.statements] == [
        ("h", 7, "f32[N, 128]", 784 * 128 + 128), ("logits", 8, "f32[N, 10]", 128 * 10 + 10),
        ("probs", 10, "f32[N, 10]", 0)]
    assert r.statements[0].flops.total.format() == "200,960*N"
    assert r.statements[0].activation_bytes == Poly.dim("N") * 512
    assert r.param_bytes == 4 * (784 * 128 + 128 + 128 * 10 + 10)
    assert r.state_bytes == 4 * (2 * (784 * 128 + 128 + 128 * 10 + 10) + 1)  # adam's m and v, and its step count


def test_flops_are_linear_in_the_batch():
    one, two = report("mlp", 1), report("mlp", 2)
    for r in (one, two):
        assert r.at_batch(r.inference.total).value is not None
    assert two.at_batch(two.inference.total).value == 2 * one.at_batch(one.inference.total).value
    for a, b in zip(one.statements, two.statements, strict=True):
        assert two.at_batch(b.flops.total).value == 2 * one.at_batch(a.flops.total).value


def test_a_symbolic_sequence_length_stays_in_the_figures():
    r = report("char_lm", 8)
    at = r.at_batch(r.inference.total)
    assert at.value is None and at.symbols == ["T"]
    assert r.figure(r.inference.total)["needs"] == ["T"]
    assert "T stays symbolic" in r.render()


def test_poly_formatting():
    n, t = Poly.dim("N"), Poly.dim("T")
    assert (203_520 * n + 10).format() == "203,520*N + 10"
    assert (2 * n * t * t + n * t).format(grouped=False) == "2*N*T^2 + N*T"
    assert Poly.dim("4*N*T") == 4 * n * t
    assert (3 * n * t).at({"N": 2}) == 6 * t
    assert Poly().format() == "0"


def test_batch_must_be_positive():
    with pytest.raises(UsageError, match="positive"):
        report("mlp", 0)


# ---- the command line ------------------------------------------------------------------------------------------


def test_check_prints_the_cost_section(capsys):
    assert main(["check", str(EXAMPLES / "mlp.bm"), "--batch", "10"]) == 0
    out = capsys.readouterr().out
    assert "  parameters:" in out  # the summary, then the cost section
    assert "  cost at N = 10 (forward, per statement):" in out
    assert "      FLOPs        203,580*N = 2,035,800" in out
    assert "      matmul/conv  203,264*N = 2,032,640" in out
    assert "    parameters       407,080 bytes" in out


def test_check_json_has_the_cost(capsys):
    assert main(["check", str(EXAMPLES / "mlp.bm"), "--json", "--batch", "10"]) == 0
    cost = json.loads(capsys.readouterr().out)["cost"]
    assert cost["batch"] == {"symbol": "N", "value": 10}
    assert cost["inference"]["matmul_flops"] == {"formula": "203264*N", "value": 2_032_640}
    assert cost["train_step"]["flops"]["value"] > 2 * cost["inference"]["flops"]["value"]
    assert cost["parameter_bytes"] == 407_080 and cost["optimizer"] == "adam"
    assert [s["name"] for s in cost["statements"]] == ["h", "logits", "probs"]
    assert set(cost["statements"][0]) == {"name", "line", "output", "parameters", "flops", "matmul_flops",
                                          "activation_bytes"}
