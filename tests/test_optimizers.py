"""The optimizers, written as IR, against direct NumPy implementations of their published update rules."""

from __future__ import annotations

import numpy as np
import pytest

import bmc
import bmc.runtime

MODEL = """model m { input x: f64[N, 3] target t: f64[N, 1]
  param W: f64[3, 1] ~ normal(std = 0.5)  param b: f64[1] = 0.1
  output p = x @ W + b  loss = mse(p, t) }
train m { optimizer = %s  batch = full }"""


def gradients(params, x, t):
    p = x @ params["W"] + params["b"]
    d = 2 * (p - t) / p.size
    return {"W": x.T @ d, "b": d.sum(axis=0)}


def run(optimizer: str, steps: int = 5):
    model = bmc.compile_string(MODEL % optimizer)
    module = bmc.runtime.load_source(model.generate())
    params, state = model.init_params(0)
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 1))
    lr = np.float64(model.config.optimizer.lr)
    history = [dict((k, v.copy()) for k, v in params.items())]
    for _ in range(steps):
        module.train_step(params, state, {"x": x, "t": t}, lr)
        history.append(dict((k, v.copy()) for k, v in params.items()))
    return history, x, t, model.config.optimizer.args


def test_gd():
    history, x, t, _ = run("gd(lr = 0.1)")
    p = history[0]
    for step in history[1:]:
        g = gradients(p, x, t)
        p = {k: p[k] - 0.1 * g[k] for k in p}
        for k in p:
            np.testing.assert_allclose(step[k], p[k], rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    history, x, t, _ = run(f"sgd(lr = 0.05, momentum = 0.9, nesterov = {'true' if nesterov else 'false'})")
    p, v = history[0], {k: 0.0 for k in history[0]}
    for step in history[1:]:
        g = gradients(p, x, t)
        v = {k: 0.9 * v[k] + g[k] for k in p}
        p = {k: p[k] - 0.05 * ((g[k] + 0.9 * v[k]) if nesterov else v[k]) for k in p}
        for k in p:
            np.testing.assert_allclose(step[k], p[k], rtol=1e-12)


def test_adam():
    history, x, t, _ = run("adam(lr = 0.01)")
    p, m, v = history[0], {k: 0.0 for k in history[0]}, {k: 0.0 for k in history[0]}
    for i, step in enumerate(history[1:], start=1):
        g = gradients(p, x, t)
        m = {k: 0.9 * m[k] + 0.1 * g[k] for k in p}
        v = {k: 0.999 * v[k] + 0.001 * g[k] ** 2 for k in p}
        p = {k: p[k] - 0.01 * (m[k] / (1 - 0.9**i)) / (np.sqrt(v[k] / (1 - 0.999**i)) + 1e-7) for k in p}
        for k in p:
            np.testing.assert_allclose(step[k], p[k], rtol=1e-10)
