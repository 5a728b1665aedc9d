"""docs/language.md, the language reference: one entry per builtin (every function and layer, initializer, train
setting, optimizer, schedule, metric and data set), its parameters read from the signature the compiler checks
arguments with, a line from bmc/docgen/functions.py or training.py, and an example compiled here, whose result
(output shapes, parameters, or the setting as bmc reads it) the entry shows."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from bmc.api import Model
from bmc.docgen import functions, markdown, tables, training
from bmc.docgen.entry import Entry
from bmc.frontend.signature import REQUIRED, Signature
from bmc.init import INITIALIZERS
from bmc.train import config
from bmc.train.schedules import SCHEDULES

Rows = list[tuple[str, str, str]]  # parameter, default, accepts


@dataclass(frozen=True)
class Section:
    title: str
    kind: str  # a heading that another section took already gets "(kind)"
    intro: str
    entries: dict[str, Entry]
    wrap: Callable[[Entry], str]  # the entry's complete example file
    result: Callable[[Model, str], str | None]
    rows: Callable[[str, Entry], Rows] | None = None
    call: Callable[[str, Entry], str] | None = None  # the signature line


def _model(body: str, name: str = "example") -> str:
    return f"model {name} {{\n{textwrap.indent(body.strip(), '    ')}\n}}\n"


def _function_file(e: Entry) -> str:
    return e.example.strip() + "\n" if e.whole_file else _model(e.example)


def _init_file(e: Entry) -> str:
    return _model(f"input  x: f32[N, 64]\nparam W: f32[64, 32] ~ {e.example}\noutput h = x @ W")


BASES = {
    "classifier": "input  image: f32[N, 64]\ntarget label: i64[N]\nlogits = dense(image, 10)\n"
                  "output probs = softmax(logits)\nloss = cross_entropy(logits, label)",
    "regression": "input  x: f32[N, 10]\ntarget y: f32[N]\noutput prediction = dense(x, 1)\nloss = mse(prediction, y)",
    "images": "input  image: f32[N, 784]\ntarget label: i64[N]\nlogits = dense(relu(dense(image, 128)), 10)\n"
              "output probs = softmax(logits)\nloss = cross_entropy(logits, label)",
}
SHOWN = 6  # parameters a result names; `bmc check` lists them all


def _train_file(e: Entry) -> str:
    if e.whole_file:
        return e.example.strip() + "\n"
    return _model(BASES[e.base]) + "\ntrain example {\n" + textwrap.indent(e.example.strip(), "    ") + "\n}\n"


def _shapes(m: Model, name: str) -> str:
    s = m.summary_json()
    outputs = ", ".join(f"`{k}: {t}`" for k, t in s["outputs"].items())
    shown = [f"`{k}: {p['type']} ~ {p['init']}`" for k, p in s["parameters"].items()]
    more = len(shown) - SHOWN
    params = ", ".join(shown[:SHOWN]) + (f" and {more} more (`bmc check` lists them)" if more > 0 else "")
    loss = f"; loss `{s['loss']}`" if s["loss"] else ""
    word = "outputs" if len(s["outputs"]) > 1 else "output"
    return f"{word} {outputs}{loss}; " + (f"parameters {params}." if params else "no parameters.")


def _param(m: Model, name: str) -> str:
    p = m.summary_json()["parameters"]["W"]
    return f"`W: {p['type']} ~ {p['init']}`"


def _setting(m: Model, name: str) -> str | None:
    """A setting whose value is more than its text (an optimizer, a schedule, a checkpoint policy), as bmc reads
    it, defaults filled in; None for the others, which read as written."""
    v = getattr(m.config, name, None)
    return f"`{v}`" if type(v).__str__ is not object.__str__ and not isinstance(v, int | float | str | tuple) \
        else None


def _signature_rows(sig: Signature, e: Entry) -> Rows:
    rows = []
    for p in sig.params:
        default = f"left out: {e.omitted[p.name]}" if p.default is None else markdown.value(p.default)
        rows.append((f"`{p.name}`", default, markdown.accepts(p.domain)))
    return rows


def _signature_call(sig: Signature, e: Entry) -> str:
    parts = [p.name if p.default is REQUIRED else f"[{p.name}]" if p.default is None
             else f"{p.name} = {markdown.value(p.default)}" for p in sig.params]
    return f"{sig.func}({', '.join(parts)})"


def _settings_rows(defaults: dict) -> Rows:
    return [(f"`{k}`", markdown.value(v), "true or false" if isinstance(v, bool) else config.DOMAINS[k].describe())
            for k, v in defaults.items()]


def _settings_call(name: str, defaults: dict) -> str:
    return f"{name}({', '.join(f'{k} = {markdown.value(v)}' for k, v in defaults.items())})"


def _function_sections() -> list[Section]:
    sigs = tables.signatures()
    grouped = {title: (tables.unary() if title == functions.UNARY_GROUP else ()) + names
               for title, names in functions.GROUPS.items()}
    shown = [n for names in grouped.values() for n in names]
    missing = [n for n in sigs if n not in shown]
    if missing or len(set(shown)) != len(shown):
        raise KeyError(f"bmc/docgen/functions.py: GROUPS must name every function once; not grouped: {missing}")
    return [Section(title, "function", "", {n: _entry(functions.FUNCTIONS, n) for n in names}, _function_file,
                    _shapes, lambda n, e: _signature_rows(sigs[n], e), lambda n, e: _signature_call(sigs[n], e))
            for title, names in grouped.items()]


def _entry(entries: dict[str, Entry], name: str) -> Entry:
    if name not in entries:
        raise KeyError(f"the builtin '{name}' has no entry in bmc/docgen (functions.py or training.py)")
    return entries[name]


def _entries(entries: dict[str, Entry], names: tuple[str, ...]) -> dict[str, Entry]:
    extra = sorted(set(entries) - set(names))
    if extra:
        raise KeyError(f"bmc/docgen has entries for names that are not builtins: {extra}")
    return {n: _entry(entries, n) for n in names}


def sections() -> list[Section]:
    names = tables.builtins()
    init_sig = {k: Signature(k, params) for k, params in INITIALIZERS.items()}
    return [
        *_function_sections(),
        Section("Initializers", "initializer", INIT_INTRO + " " + training.FANS,
                _entries(training.INITIALIZERS, names["initializers"]), _init_file, _param,
                lambda n, e: _signature_rows(init_sig[n], e) if init_sig[n].params else [],
                lambda n, e: _signature_call(init_sig[n], e) if init_sig[n].params else n),
        Section("Train settings", "setting", SETTINGS_INTRO, _entries(training.SETTINGS, names["train settings"]),
                _train_file, _setting),
        Section("Optimizers", "optimizer", "The value of `optimizer`. The learning rate may be given first, "
                "without its name: `adam(1e-3)`.", _entries(training.OPTIMIZERS, names["optimizers"]), _train_file,
                lambda m, n: f"`{m.config.optimizer}`", lambda n, e: _settings_rows(config.OPTIMIZERS[n]),
                lambda n, e: _settings_call(n, config.OPTIMIZERS[n])),
        Section("Schedules", "schedule", "The value of `schedule`, evaluated each step: the train step takes the "
                "learning rate as an input, so a schedule needs no recompilation. Settings are keywords.",
                _entries(training.SCHEDULES, names["schedules"]), _train_file, lambda m, n: f"`{m.config.schedule}`",
                lambda n, e: _settings_rows(SCHEDULES[n]), lambda n, e: _settings_call(n, SCHEDULES[n])),
        Section("Metrics", "metric", METRICS_INTRO, _entries(training.METRICS, names["metrics"]), _train_file,
                lambda m, n: None),
        Section("Data sets", "data set", DATA_INTRO, _entries(training.DATASETS, names["data sets"]), _train_file,
                lambda m, n: None),
    ]


INIT_INTRO = ("After `~` in a parameter declaration (`param W: f32[64, 32] ~ he_normal`) or as a layer's `init`, "
              "`bias_init` or `recurrent_init`. Each parameter draws from its own generator seeded by (seed, its "
              "name), so adding a layer never changes the others' initial values.")
SETTINGS_INTRO = ("A train block, `train MODEL { ... }`, holds `setting = value` lines; each is checked where it "
                  "is written, and the flags of `bmc train` override them.")
METRICS_INTRO = ("The value of `metrics`, a list. Metrics read the model's first output: class scores [N, C] are "
                 "argmaxed, a probability [N] or [N, 1] is thresholded at 0.5, regression outputs are compared as "
                 "numbers. They are computed from exact counts over a whole split, so they do not depend on the "
                 "batch size. Early stopping and checkpoints watch them by name (`val_accuracy`, `test_f1`).")
DATA_INTRO = ("The value of `data` (or `--data`): a name below, or a path in quotes: a directory of IDX files in "
              "MNIST's layout, a folder with a subfolder of images per class, a `.npz` with x_train, y_train, "
              "x_test, y_test, a `.csv` with a header row, or `\"text:FILE[,FILE...]\"` for a character-level "
              "language model.")
