"""Differential testing: random `.bm` programs, each built twice, by bmc and as the same computation in PyTorch.

A program is drawn (generate.py) as data (program.py): statements whose `.bm` text bmc compiles and whose PyTorch
computation (catalog.py) is written from the language's definition, never from bmc's code. The reference
(reference.py) evaluates it in float64: the outputs in inference mode, the loss and the gradient of every
parameter in training mode, and the parameters after a few optimizer steps (torch.optim). Every bmc target
(targets.py: NumPy f64 and f32, ONNX in onnxruntime and in onnx.reference, the CUDA emulator) is then compared
with the reference (compare.py). tests/test_differential.py runs a fixed seed and budget in CI; set
BMC_DIFFERENTIAL=5000 for a long run.
"""
