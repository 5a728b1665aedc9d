"""Pictures of models: `bmc graph` (statements.py for the `.bm` statements, kernels.py for what the backends run),
drawn by Graphviz (picture.py)."""
