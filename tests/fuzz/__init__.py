"""The fuzzing harness (issue 9): hostile or broken input must never run code, lose data or crash bmc.

Inputs are mutants of every `.bm` file in the repository (mutate.py: bytes, tokens, extreme numbers, Unicode, deep
nesting, long lines, code-execution payloads) and generated programs (grammar.py: well-formed ones, and ones with one
out-of-domain argument). Each goes through `bmc check`, `bmc build` for the NumPy target, the generated module's
forward and train step, and on samples the ONNX and CUDA targets (stages.py), in a pool of long-lived workers with a
time limit per stage, an address-space limit and a search for payload markers after every input (pool.py,
worker.py). The outcomes are counted per kind of input (outcomes.py); anything but `ok` and a located user error
fails.

    python -m tests.fuzz --mutations 50000 --programs 10000 --report fuzz.json --failures fuzz-failures/

tests/test_fuzz.py runs a fixed seed and budget in CI; BMC_FUZZ_MUTATIONS and BMC_FUZZ_PROGRAMS set a longer one.
"""
