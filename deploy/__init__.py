"""Deployment: ONNX / TorchScript export, inference without PyTorch, faster PyTorch inference.

- ``deploy.onnx_export``: export a DB model (deformable convolution included) to ONNX / TorchScript.
- ``deploy.onnx_predictor``: ``OnnxDetector``, images -> polygons with ONNX Runtime; it imports no torch.
- ``deploy.optimize``: BatchNorm folding, channels_last, torch.compile, reduced precision, ONNX Runtime quantisation.
- ``deploy.backend``: which forward path runs (plain, optimised PyTorch, ONNX Runtime on a cached export) and
  building it: the default of demo.py, eval.py and ``Detector.from_experiment``.
- ``deploy.cli``: the --plain / --optimize / --precision / --cache_dir options of demo.py and eval.py (no torch).
- ``deploy.precision``: ``--precision auto``: CPU flags, the int8 check stored at export, the choice (no torch).

This ``__init__`` imports nothing, so that ``deploy.onnx_predictor`` stays free of torch.
"""
