"""`bmc graph` and `bmc plot`: every example drawn (forward, train step, kernels), statements attributed to the
`.bm` lines that made them, user strings escaped in DOT, a missing `dot` a clear error, curves from builds and logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bmc.cli import main
from bmc.compiler import compile_file, compile_source
from bmc.diagnostics import UsageError
from bmc.draw import kernels, picture, statements

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.bm"))
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install "
                               "graphviz)")


def _titles(pic) -> set[str]:
    return {b.lines[0] for b in pic.boxes.values()}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_model_statement_is_a_box(path):
    c = compile_file(path)
    pic = statements.picture(c)
    model_statements = [o.key for o in c.eval_model.origins.values()
                        if o.kind == "statement" and len(o.path) == 1 and not o.repeat and o.key != "loss"]
    keys = set(pic.boxes)
    for key in model_statements:
        assert key in keys or key in pic.clusters, key
    assert pic.edges, "a model's statements are connected"
    for a, b in pic.edges:
        assert a in pic.boxes and b in pic.boxes
    source = picture.render(pic).source
    assert source.startswith("digraph")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_train_step_sets_backward_and_optimizer_apart(path):
    c = compile_file(path)
    pic = statements.picture(c, train=True)
    sections = {b.cluster[0] for b in pic.boxes.values() if b.cluster}
    assert {"forward", "backward", "optimizer"} <= sections
    assert any(b.kind == "loss" for b in pic.boxes.values())
    g = c.train_step(optimized=False)
    assert 0 < g.sections["backward"] < g.sections["optimizer"] < len(g.nodes)


def test_repeat_copies_are_nested_clusters_and_depth_collapses_them():
    c = compile_file(EXAMPLES[[p.stem for p in EXAMPLES].index("vit")])
    full = statements.picture(c)
    assert {"h", "h.0", "h.1"} <= set(full.clusters)
    assert full.boxes["h.0.a"].cluster == ("h", "h.0")
    assert "layer_norm → attention → +" in full.boxes["h.0.a"].lines[1]
    collapsed = statements.picture(c, depth=0)
    assert not collapsed.clusters
    assert collapsed.boxes["h"].kind == "collapsed"
    params = sum(o.params for o in c.eval_model.origins.values() if o.path[:1] == ("h",))
    assert f"{params:,} params" in collapsed.boxes["h"].lines[2]


def test_every_op_carries_the_statement_that_made_it():
    """Span.origin survives the optimizer and autodiff: every node of both graphs names a statement."""
    c = compile_file(EXAMPLES[[p.stem for p in EXAMPLES].index("vit")])
    for g in (c.inference(), c.train_step()):
        made = [n for n in g.nodes if n.span is not None and n.span.line < 16]  # not the train block's
        assert made and all(n.span.origin and n.span.origin[-1] in c.model.origins for n in made)


@pytest.mark.parametrize("backend", kernels.BACKENDS)
def test_kernel_pictures_show_the_backends_own_groups(backend):
    from bmc import targets

    c = compile_file(EXAMPLES[[p.stem for p in EXAMPLES].index("mlp")])
    _, groups, _ = targets.target(backend).groups(c.train_step())
    pic = kernels.picture(c, backend, train=True)
    assert len(pic.clusters) == sum(label is not None for label, _ in groups)
    drawn = sum(1 for b in pic.boxes.values() if b.kind == "op")
    assert drawn == sum(len(nodes) for _, nodes in groups)
    if backend == "cuda":
        assert any("fused" in label for label in pic.clusters.values())
    else:
        assert any("write it in turn" in label for label in pic.clusters.values())


@needs_dot
def test_user_strings_are_escaped_in_dot(tmp_path):
    """A file name with markup and quotes is text in the drawing, never markup or DOT syntax."""
    text = 'model m() {\n    input x: f32[N, 4]\n    output y = relu(x)\n}\n'
    c = compile_source(text, 'we<i>rd "&" ]; name.bm')
    out = picture.save(statements.picture(c, train=False), tmp_path / "a.svg")
    svg = out.read_text()
    assert "<i>" not in svg and "we&lt;i&gt;rd" in svg


@needs_dot
def test_cli_draws_svg_png_and_dot(tmp_path, capsys):
    mlp = str(EXAMPLES[[p.stem for p in EXAMPLES].index("mlp")])
    for name, args in (("a.svg", []), ("b.png", ["--train"]), ("c.dot", ["--kernels"]),
                       ("d.png", ["--kernels", "numpy", "--train"])):
        assert main(["graph", mlp, "-o", str(tmp_path / name), *args]) == 0
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "c.dot").read_text().startswith("digraph")


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    mlp = str(EXAMPLES[[p.stem for p in EXAMPLES].index("mlp")])
    assert main(["graph", mlp, "-o", str(tmp_path / "a.png")]) == 1
    err = capsys.readouterr().err
    assert "Graphviz" in err and "apt-get install graphviz" in err
    assert not (tmp_path / "a.png").exists()
    assert main(["graph", mlp, "-o", str(tmp_path / "a.dot")]) == 0  # DOT needs no dot


def test_bad_picture_arguments(tmp_path, capsys):
    mlp = str(EXAMPLES[[p.stem for p in EXAMPLES].index("mlp")])
    assert main(["graph", mlp, "-o", str(tmp_path / "a.jpg")]) == 1
    assert "end the output's name with one of" in capsys.readouterr().err
    assert main(["graph", mlp, "--depth", "-1", "-o", str(tmp_path / "a.dot")]) == 1
    with pytest.raises(UsageError):
        picture.save(statements.picture(compile_file(mlp)), tmp_path / "x.gif")


def test_plot_draws_a_build_and_its_logs(tmp_path, capsys):
    from bmc import plot

    mlp = str(EXAMPLES[[p.stem for p in EXAMPLES].index("mlp")])
    run, log = tmp_path / "run", tmp_path / "log.csv"
    assert main(["train", mlp, "--data", "digits", "--epochs", "2", "-o", str(run), "--log", str(log),
                 "--quiet"]) == 0
    rows = plot.read_run(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert plot.read_run(log)[1]["loss"] == pytest.approx(rows[1]["loss"])
    shown = plot.panels(rows)
    assert shown["loss"] == ["loss"] and "accuracy" in shown["metrics"] and "test_f1" in shown["metrics"]
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(log), "-o", str(tmp_path / "c.svg")]) == 0
    untrained = tmp_path / "untrained"
    assert main(["build", mlp, "-o", str(untrained)]) == 0
    capsys.readouterr()
    assert main(["plot", str(untrained), "-o", str(tmp_path / "u.png")]) == 1
    assert "was not trained" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hello")
    assert main(["plot", str(tmp_path / "x.txt"), "-o", str(tmp_path / "u.png")]) == 1
    assert main(["plot", str(tmp_path / "nothing"), "-o", str(tmp_path / "u.png")]) == 1
