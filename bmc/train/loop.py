"""The training loop: batches from a task, the generated train step, a learning-rate schedule, metrics per epoch
and a progress bar.

A task says what one epoch's batches are and how to score the model: `ArrayTask` for labelled arrays (images,
features), `TextTask` for next-character prediction on text.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from bmc.diagnostics import BmcError, BmcWarning, DataError
from bmc.runtime import predict_batches
from bmc.train import metrics as M
from bmc.train.augment import Augment
from bmc.train.checkpoint import Checkpointer, TrainState
from bmc.train.config import TrainConfig
from bmc.train.early_stop import EarlyStop
from bmc.train.numerics import Watch
from bmc.train.progress import Progress
from bmc.train.replicas import Replicas

Feed = dict[str, np.ndarray]


@dataclass
class EpochLog:
    epoch: int
    step: int
    loss: float
    train: dict[str, float]
    valid: dict[str, float]  # the validation split's loss and metrics (empty without one)
    test: dict[str, float]  # the test set's metrics: after the last epoch, or every epoch when asked
    seconds: float
    samples_per_second: float
    lr: float = 0.0  # the learning rate of the epoch's last step

    def columns(self) -> dict[str, float]:
        """The epoch's numbers by name, as early stopping, checkpoints and logs call them: loss and the train
        metrics (accuracy, ...), val_loss and val_<metric>, test_<metric>."""
        out = {"loss": self.loss, **self.train}
        out.update({f"val_{k}": v for k, v in self.valid.items()})
        out.update({f"test_{k}": v for k, v in self.test.items()})
        return out

    def line(self, epochs: int) -> str:
        parts = [f"epoch {self.epoch}/{epochs}", f"step {self.step}", f"loss {self.loss:.4f}"]
        parts += [f"train {k} {v:.4f}" for k, v in self.train.items()]
        parts += [f"valid {k} {v:.4f}" for k, v in self.valid.items()]
        parts += [f"test {k} {v:.4f}" for k, v in self.test.items()]
        parts.append(f"{self.seconds:.2f}s ({self.samples_per_second:,.0f} samples/s)")
        return "  ".join(parts)


@dataclass
class History:
    epochs: list[EpochLog] = field(default_factory=list)
    stopped_early: str = ""  # what early stopping said, when it stopped the run
    best: tuple[dict, dict] | None = None  # early stopping's best parameters and state, to restore

    @property
    def final(self) -> EpochLog:
        return self.epochs[-1]

    def as_json(self) -> list[dict]:
        return [dict(e.__dict__) for e in self.epochs]


@dataclass
class Run:
    """What a run does besides training: checkpoints, resuming, early stopping, test scores each epoch, and
    per-epoch loggers."""

    checkpoints: Checkpointer | None = None
    resume: TrainState | None = None
    early_stop: EarlyStop | None = None
    test_every_epoch: bool = False
    fingerprint: dict = field(default_factory=dict)
    on_epoch: list[Callable[[History], None]] = field(default_factory=list)  # loggers, after each epoch
    replicas: Replicas | None = None  # data-parallel training over MPI (bmc/train/replicas.py)


# ---- scoring -----------------------------------------------------------------------------------------------------


def predictions(scores: np.ndarray) -> np.ndarray:
    """Class predictions from an output: argmax of class scores [n, C] (or [n, T, C]: a class per position, as
    flat predictions); a probability [n] or [n, 1] above 0.5."""
    if scores.ndim == 3 and scores.shape[2] > 1:
        return scores.argmax(axis=2).reshape(-1)
    if scores.ndim == 2 and scores.shape[1] > 1:
        return scores.argmax(axis=1)
    return (scores.reshape(len(scores)) > 0.5).astype(np.int64)


def update(acc, num_classes: int | None, outputs: np.ndarray, targets: np.ndarray) -> None:
    """Add a batch to the metrics. Class labels fed to a float target (`target y: f32[N]` for a binary
    cross-entropy) are still whole numbers: the metrics count them as classes."""
    if num_classes is None:
        acc.update(targets.reshape(-1), outputs.reshape(-1))
    else:
        acc.update(targets.reshape(-1).astype(np.int64, copy=False), predictions(outputs))


def usable_metrics(names: tuple[str, ...], num_classes: int | None) -> tuple[str, ...]:
    valid = M.CLASSIFICATION_METRICS if num_classes is not None else M.REGRESSION_METRICS
    chosen = tuple(n for n in names if n in valid)
    return chosen or (("accuracy",) if num_classes is not None else ("mse",))


def unfit_metrics(config: TrainConfig, data: str, num_classes: int | None = None, text: bool = False,
                  target: bool = True) -> BmcWarning | None:
    """The train block's metrics that do not fit the data set `data`, which training drops or replaces
    (`usable_metrics`; text is scored by loss and perplexity, a model without a target by its loss): a warning at
    the `metrics` setting saying so."""
    if "metrics" not in config.spans:  # the default metrics are chosen to fit
        return None
    if text:
        kind, valid, used = f"a text model ({data})", ("perplexity",), ("loss", "perplexity")
    elif not target:
        kind, valid, used = f"a model without a target ({data})", (), ("loss",)
    else:
        classes = num_classes is not None
        kind = f"classification ({data}: {num_classes} classes)" if classes else f"regression ({data})"
        valid = M.CLASSIFICATION_METRICS if classes else M.REGRESSION_METRICS
        used = usable_metrics(config.metrics, num_classes)
    unfit = [n for n in config.metrics if n not in valid]
    if not unfit:
        return None
    several = len(unfit) > 1
    outcome = "dropped" if set(used) & set(config.metrics) else f"training reports {', '.join(used)} instead"
    return BmcWarning(f"metric{'s' * several} {', '.join(unfit)} {'do' if several else 'does'} not fit {kind}: "
                      f"{outcome}", config.spans["metrics"],
                      (f"metrics for {kind.split(' (')[0]}: {', '.join(valid) or 'none (it is scored by its loss)'}",))


def evaluate(module: ModuleType, params: dict[str, np.ndarray], data: Feed, output: str | None,
             num_classes: int | None, names: tuple[str, ...], acc=None) -> dict[str, float]:
    """The metrics of `output` against the feed's target; for a model without a target (an autoencoder) its loss.
    `acc`: the accumulator to count into (a confusion matrix the caller reads afterwards)."""
    target = next((k for k in data if k not in module.INPUTS), None)
    if target is None:
        return {"loss": mean_loss(module, params, data)}
    if output is None:
        return {}
    inputs = {k: v for k, v in data.items() if k in module.INPUTS}
    outputs = predict_batches(module, params, inputs)
    acc = M.new_accumulator(num_classes) if acc is None else acc
    update(acc, num_classes, outputs[output], data[target])
    return {n: M.compute(n, acc) for n in names}


def mean_loss(module: ModuleType, params: dict[str, np.ndarray], data: Feed, batch: int = 1024) -> float:
    """The inference-mode loss over a whole feed, in batches (each batch's mean weighted by its size)."""
    n = len(next(iter(data.values())))
    total = 0.0
    for start in range(0, n, batch):
        part = {k: v[start:start + batch] for k, v in data.items()}
        total += float(module.evaluate(params, part)["loss"]) * len(next(iter(part.values())))
    return total / n


# ---- tasks ---------------------------------------------------------------------------------------------------------


@dataclass
class ArrayTask:
    """Labelled arrays: shuffled mini-batches each epoch, optionally augmented; scored on a validation split each
    epoch and on the test set."""

    train: Feed
    valid: Feed
    test: Feed
    output: str | None
    num_classes: int | None
    metrics: tuple[str, ...]
    batch: int | None
    augment: Augment = field(default_factory=Augment)
    target_name: str | None = None  # the feeds' target (default: the key after the one input)

    def __post_init__(self) -> None:
        self.n = len(next(iter(self.train.values())))
        self.batch_size = self.n if self.batch is None else min(self.batch, self.n)
        self.steps_per_epoch = math.ceil(self.n / self.batch_size)
        self.target = self.target_name or next((k for k in self.train if k != self.input), None)
        self.acc = M.new_accumulator(self.num_classes)

    @property
    def input(self) -> str:
        return next(iter(self.train))

    def batches(self, rng: np.random.Generator) -> Iterator[Feed]:
        if self.batch_size == self.n and not self.augment:
            yield self.train
            return
        order = rng.permutation(self.n)
        for step in range(self.steps_per_epoch):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            feed = {k: v[idx] for k, v in self.train.items()}
            if self.augment:
                feed[self.input] = self.augment(feed[self.input], rng)
            yield feed

    def start_epoch(self) -> None:
        self.acc = M.new_accumulator(self.num_classes)

    def epoch_state(self) -> dict | None:
        return self.acc.to_json() if self.acc is not None else None

    def restore_epoch(self, saved: dict | None) -> None:
        if saved is not None and self.acc is not None:
            self.acc.restore(saved)

    def track(self, result: dict, feed: Feed) -> None:
        if self.output is not None and self.target is not None:
            update(self.acc, self.num_classes, np.asarray(result[self.output]), feed[self.target])

    def train_scores(self) -> dict[str, float]:
        if self.output is None or self.target is None:  # no metrics without a target: the loss is the score
            return {}
        return {k: M.compute(k, self.acc) for k in self.metrics}

    def valid_scores(self, module: ModuleType, params: dict) -> dict[str, float]:
        """The validation loss and metrics."""
        if not self.valid or not len(next(iter(self.valid.values()))):
            return {}
        scores = evaluate(module, params, self.valid, self.output, self.num_classes, self.metrics)
        return scores if "loss" in scores else {"loss": mean_loss(module, params, self.valid), **scores}

    def test_scores(self, module: ModuleType, params: dict) -> dict[str, float]:
        if not self.test or not len(next(iter(self.test.values()))):
            return {}
        return evaluate(module, params, self.test, self.output, self.num_classes, self.metrics)


@dataclass
class TextTask:
    """Next-character prediction: random windows of `window + 1` characters (inputs, and targets shifted by one);
    scored by loss and perplexity on consecutive windows of the validation text."""

    train_ids: np.ndarray
    valid_ids: np.ndarray
    window: int
    batch: int
    input_name: str
    target_name: str

    def __post_init__(self) -> None:
        if len(self.train_ids) <= self.window + 1:
            raise BmcError(f"the training text has {len(self.train_ids)} characters, fewer than a window of "
                           f"{self.window + 1}")
        self.batch_size = self.batch
        self.steps_per_epoch = max(1, len(self.train_ids) // (self.batch * self.window))
        self.losses: list[float] = []

    def batches(self, rng: np.random.Generator) -> Iterator[Feed]:
        offsets = np.arange(self.window + 1)
        for _ in range(self.steps_per_epoch):
            starts = rng.integers(0, len(self.train_ids) - self.window - 1, size=self.batch)
            chunk = self.train_ids[starts[:, None] + offsets]
            yield {self.input_name: chunk[:, :-1], self.target_name: chunk[:, 1:]}

    def start_epoch(self) -> None:
        self.losses = []

    def epoch_state(self) -> dict:
        return {"losses": list(self.losses)}

    def restore_epoch(self, saved: dict | None) -> None:
        self.losses = list(saved["losses"]) if saved else []

    def track(self, result: dict, feed: Feed) -> None:
        self.losses.append(float(result["loss"]))

    def train_scores(self) -> dict[str, float]:
        return {"perplexity": math.exp(float(np.mean(self.losses)))} if self.losses else {}

    def test_scores(self, module: ModuleType, params: dict) -> dict[str, float]:
        return {}  # the validation text is the held-out text

    def valid_scores(self, module: ModuleType, params: dict) -> dict[str, float]:
        count = (len(self.valid_ids) - 1) // self.window
        if count < 1:
            return {}
        ids = self.valid_ids[: count * self.window + 1]
        x = np.stack([ids[i * self.window:(i + 1) * self.window] for i in range(count)])
        y = np.stack([ids[i * self.window + 1:(i + 1) * self.window + 1] for i in range(count)])
        total = 0.0
        for start in range(0, count, self.batch):
            feed = {self.input_name: x[start:start + self.batch], self.target_name: y[start:start + self.batch]}
            total += float(module.evaluate(params, feed)["loss"]) * len(feed[self.input_name])
        loss = total / count
        return {"loss": loss, "perplexity": math.exp(loss)}


# ---- the loop ----------------------------------------------------------------------------------------------------


@np.errstate(all="ignore")  # no NumPy warnings: `watch` reports non-finite values itself, once, with their cause
def fit(module: ModuleType, config: TrainConfig, params: dict[str, np.ndarray], state: dict[str, np.ndarray],
        task: ArrayTask | TextTask, log: Callable[[str], None] = print, progress: bool = True,
        watch: Watch | None = None, run: Run | None = None) -> History:
    """Train in place (params and state are updated) and return the per-epoch history. `watch` checks each step's
    numbers (bmc/train/numerics.py) and collects warnings about them; a non-finite loss always stops training.
    `run` adds checkpoints, resuming from one, early stopping and loggers."""
    run = run or Run()
    watch = watch or Watch(lr=config.optimizer.lr)
    values = functools.partial(current_values, module, params, state)
    per_epoch = task.steps_per_epoch
    total = config.steps if config.steps else config.epochs * per_epoch
    epochs = math.ceil(total / per_epoch)
    floats = {"f32": np.float32, "f64": np.float64}
    lr_type = floats[module.HYPER["lr"][0]] if "lr" in module.HYPER else np.float32
    base_lr = config.optimizer.lr
    history = History()
    log_every = max(1, epochs // 20)  # at most about 20 lines for long runs
    rng = np.random.default_rng(config.seed)
    step, first, skip = 0, 1, 0
    resumed = run.resume
    if resumed is not None:
        history.epochs = [EpochLog(**e) for e in resumed.history]
        step, first, skip = resumed.step, resumed.epoch, resumed.batches
        rng.bit_generator.state = resumed.rng
        log(f"resuming at epoch {first}, step {step}" + (f" ({skip} of its {per_epoch} batches done)" if skip else ""))
    ckpt = run.checkpoints

    def train_state(epoch: int, batches: int, epoch_rng: dict, loss: float, seen: int, acc) -> TrainState:
        return TrainState(epoch, step, batches, epoch_rng, loss, seen, acc, history.as_json(),
                          run.early_stop.to_json() if run.early_stop else None,
                          history.final.columns() if history.epochs else {}, run.fingerprint,
                          history.stopped_early)

    def save(ts: TrainState) -> None:
        if replicas is not None and not replicas.leader:  # rank 0 writes the job's checkpoints
            return
        p, s = values()
        best = (run.early_stop.best_params, run.early_stop.best_state) if run.early_stop else None
        ckpt.save(p, s, ts.history, ts, best)

    def epoch_state():
        """The epoch's metric counts so far: over every rank's rows when data-parallel (which each rank counts
        for its own: a collective step, so every rank calls it)."""
        saved = task.epoch_state()
        if replicas is not None and saved is not None and getattr(task, "acc", None) is not None:
            replicas.combine(task.acc)
            saved = task.epoch_state()
            if not replicas.leader:  # the sum stays on rank 0 alone, so the next sum counts each row once
                task.start_epoch()
        return saved

    replicas = run.replicas
    lr = 0.0
    history.stopped_early = resumed.stopped_early if resumed is not None else ""
    for epoch in range(first, epochs + 1 if not history.stopped_early else first):
        epoch_rng = rng.bit_generator.state
        task.start_epoch()
        total_loss, seen, seen_before = 0.0, 0, 0
        if resumed is not None and epoch == first:
            total_loss, seen = resumed.epoch_loss, resumed.epoch_seen
            seen_before = seen  # trained by the run that wrote the checkpoint: not in this run's rate
            if replicas is None or replicas.leader:  # the counts of every rank's rows: rank 0 holds them
                task.restore_epoch(resumed.accumulator)
        todo = min(per_epoch, total - (step - skip))
        bar = Progress(f"epoch {epoch}/{epochs}", todo, enabled=progress, done=skip)
        start = time.perf_counter()
        for i, feed in enumerate(task.batches(rng)):
            if i >= todo:
                break
            if i < skip:  # done before the checkpoint: replayed for the batch order and augmentation draws only
                continue
            lr = config.schedule.lr(base_lr, step, total)
            hyper = {"lr": lr_type(lr), "rng": np.int64(config.seed * 1_000_003 + step)}  # a fresh key per step
            hyper = {k: hyper[k] for k in module.HYPER}
            watch.before(values)
            rows = feed
            try:
                if replicas is None:
                    result = module.train_step(params, state, feed, *hyper.values())
                else:
                    rows = replicas.shard(feed)
                    result = replicas.train_step(module, params, state, rows, len(next(iter(feed.values()))),
                                                 hyper)
            except getattr(module, "InputError", ()) as e:  # data the model's own checks refuse (an id past vocab)
                bar.close()
                raise DataError(f"the training data does not fit the model at epoch {epoch}, step {step + 1}: {e}") \
                    from None
            step += 1
            try:
                watch.after(result, rows, hyper, step, epoch, values)
            except BmcError:
                bar.close()
                raise
            loss = float(result["loss"])
            n = len(next(iter(feed.values())))
            total_loss += loss * n
            seen += n
            task.track(result, rows)
            bar.update(i + 1, seen, total_loss / seen)
            if ckpt is not None and i + 1 < todo and ckpt.due(step, epoch, epoch_end=False):
                save(train_state(epoch, i + 1, epoch_rng, total_loss, seen, epoch_state()))
        skip = 0
        seconds = time.perf_counter() - start
        bar.close()
        if replicas is not None:
            replicas.combine(getattr(task, "acc", None))
        test = task.test_scores(module, params) if run.test_every_epoch else {}
        entry = EpochLog(epoch, step, total_loss / max(seen, 1), task.train_scores(), task.valid_scores(module, params),
                         test, seconds, (seen - seen_before) / max(seconds, 1e-9), float(lr))
        history.epochs.append(entry)
        if run.early_stop is not None and run.early_stop.update(epoch, entry.columns(), values):
            es = run.early_stop
            history.stopped_early = (f"early stopping: {es.on} has not improved for {es.patience} epoch"
                                     f"{'s' * (es.patience != 1)}; the parameters of epoch {es.best_epoch} "
                                     f"({es.on} {es.best:.4f}) are restored")
        if epoch % log_every == 0 or epoch in (1, epochs) or history.stopped_early:
            log(entry.line(epochs))
        for logger in run.on_epoch:
            logger(history)
        if ckpt is not None and (ckpt.due(step, epoch, epoch_end=True) or history.stopped_early or epoch == epochs):
            save(train_state(epoch + 1, 0, rng.bit_generator.state, 0.0, 0, None))
        if history.stopped_early:
            break
    if run.early_stop is not None and run.early_stop.best_params:
        history.best = (run.early_stop.best_params, run.early_stop.best_state)
        if not history.stopped_early and run.early_stop.best_epoch != history.final.epoch:
            es = run.early_stop
            history.stopped_early = (f"early stopping: the best {es.on} was at epoch {es.best_epoch} "
                                     f"({es.best:.4f}); its parameters are restored")
    if history.stopped_early:
        log(history.stopped_early)
    watch.finish(values()[0], history.final.loss if history.epochs else None)
    return history


def current_values(module, params: dict[str, np.ndarray], state: dict[str, np.ndarray]
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The parameters and state as they are now: the dicts themselves for the generated NumPy module (its train
    step updates them in place), a copy read back from a module that keeps them on a device (onnxruntime, CUDA)."""
    download = getattr(module, "download", None)
    if download is None:
        return params, state
    p: dict[str, np.ndarray] = {}
    s: dict[str, np.ndarray] = {}
    download(p, s)
    return p, s
