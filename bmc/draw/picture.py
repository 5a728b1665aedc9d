"""A picture of a graph before it is drawn: boxes, nested clusters and edges, then a Graphviz drawing of it.

The pictures (statements.py, kernels.py) build a `Picture`; `render` turns it into Graphviz's DOT through the
`graphviz` binding and `save` writes the DOT, or has Graphviz's `dot` draw an SVG or PNG.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bmc import artifacts
from bmc.diagnostics import UsageError

FORMATS = ("svg", "png", "dot", "pdf")

# box styles by kind: shape, fill colour
STYLES = {
    "input": ("ellipse", "#dbeafe"),
    "target": ("ellipse", "#fde2e2"),
    "param": ("ellipse", "#fef3c7"),
    "statement": ("box", "#f8fafc"),
    "return": ("box", "#f8fafc"),
    "collapsed": ("box3d", "#eef2ff"),
    "output": ("box", "#dcfce7"),
    "loss": ("box", "#fee2e2"),
    "backward": ("box", "#fff7ed"),
    "optimizer": ("component", "#f3e8ff"),
    "train": ("note", "#f1f5f9"),
    "op": ("box", "#ffffff"),  # one op of the optimized graph (kernels.py)
}


@dataclass
class Box:
    key: str
    lines: list[str]  # the first is the title, drawn bold
    kind: str = "statement"
    cluster: tuple[str, ...] = ()  # the keys of the clusters it sits in, outermost first
    fill: str | None = None  # overrides the kind's colour (kernels.py colours buffers)


@dataclass
class Picture:
    title: str
    boxes: dict[str, Box] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)  # cluster key -> label
    cluster_styles: dict[str, str] = field(default_factory=dict)  # cluster key -> fill colour
    # (from, to) -> Graphviz edge attributes, in insertion order
    edges: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def box(self, box: Box) -> Box:
        return self.boxes.setdefault(box.key, box)

    def edge(self, a: str, b: str, **attrs: str) -> None:
        if a != b and a in self.boxes and b in self.boxes:
            self.edges.setdefault((a, b), attrs)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _label(box: Box) -> str:
    """An HTML-like label: the title bold, the rest smaller (every user string escaped here and only here)."""
    title, *rest = box.lines
    parts = [f"<B>{_html(title)}</B>"] + [f'<FONT POINT-SIZE="10">{_html(line)}</FONT>' for line in rest]
    return "<" + "<BR/>".join(parts) + ">"


def render(picture: Picture):
    """The picture as a `graphviz.Digraph` (top to bottom, clusters nested as their keys say)."""
    import graphviz

    g = graphviz.Digraph(picture.title, graph_attr={"rankdir": "TB", "fontname": "Helvetica", "label": picture.title,
                                                     "labelloc": "t", "fontsize": "16", "nodesep": "0.3",
                                                     "ranksep": "0.35"},
                         node_attr={"fontname": "Helvetica", "fontsize": "12", "style": "filled,rounded",
                                    "margin": "0.12,0.05"},
                         edge_attr={"color": "#64748b", "arrowsize": "0.7", "fontname": "Helvetica",
                                    "fontsize": "9"})
    ids = {key: f"n{i}" for i, key in enumerate(picture.boxes)}
    cluster_ids = {key: f"cluster_{i}" for i, key in enumerate(picture.clusters)}
    tree: dict[tuple[str, ...], list[Box]] = {}
    for box in picture.boxes.values():
        tree.setdefault(box.cluster, []).append(box)
    paths = sorted({p[:i] for p in tree for i in range(1, len(p) + 1)}, key=lambda p: (len(p), p))

    def draw(parent, path: tuple[str, ...]) -> None:
        for box in tree.get(path, []):
            shape, fill = STYLES[box.kind]
            style = "filled,rounded" if shape == "box" else "filled"
            extra = {"penwidth": "2"} if box.kind in ("output", "loss") else {}
            parent.node(ids[box.key], _label(box), shape=shape, fillcolor=box.fill or fill, style=style, **extra)
        for child in (p for p in paths if len(p) == len(path) + 1 and p[: len(path)] == path):
            key = child[-1]
            with parent.subgraph(name=cluster_ids[key]) as sub:
                sub.attr(label=_html(picture.clusters.get(key, key)), style="rounded,filled", color="#94a3b8",
                         fillcolor=picture.cluster_styles.get(key, "#ffffff"), fontsize="12", labeljust="l")
                draw(sub, child)

    draw(g, ())
    for (a, b), attrs in picture.edges.items():
        g.edge(ids[a], ids[b], **attrs)  # bmc's own styles, never user text
    return g


def save(picture: Picture, out: str | Path) -> Path:
    """Write `out` (.dot, .svg, .png or .pdf) atomically; drawing needs Graphviz's `dot` on PATH."""
    path = Path(out)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"cannot tell the picture's format from '{out}'",
                         notes=(f"end the output's name with one of: {', '.join('.' + f for f in FORMATS)}",))
    source = render(picture).source
    if fmt == "dot":
        artifacts.write_file(path, source)
        return path
    if shutil.which("dot") is None:
        raise UsageError("drawing an SVG or PNG needs Graphviz's 'dot' program, which is not on PATH",
                         notes=("install Graphviz: sudo apt-get install graphviz (Debian, Ubuntu), "
                                "brew install graphviz (macOS), conda install graphviz",
                                f"or write the DOT source with -o {path.with_suffix('.dot')} and draw it elsewhere"))
    import graphviz

    try:
        data = graphviz.pipe("dot", fmt, source.encode(), quiet=True)
    except graphviz.CalledProcessError as e:
        raise UsageError(f"Graphviz's dot could not draw the picture: {(e.stderr or b'').decode().strip()}",
                         notes=(f"write the DOT source with -o {path.with_suffix('.dot')} to look at it",)) from None
    artifacts.write_file(path, data)
    return path
