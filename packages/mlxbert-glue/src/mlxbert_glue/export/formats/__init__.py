"""One module per export format: ``onnx``, ``mlxfn``, ``hf``."""
