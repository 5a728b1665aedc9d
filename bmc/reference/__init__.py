"""The reference semantics of every op, in the core below the backends.

`rules.py` gives each op a NumPy expression over its inputs (calling the helpers in `kernels.py`); `interpret.py`
evaluates IR through those expressions (constant folding, `--check-numerics` replays, the tests); the NumPy backend
(backends/numpy) writes the same expressions into its generated module, so an op's meaning is written once.
`pytext.py` is the Python target's one escaping and mangling function for everything a user names.
"""
