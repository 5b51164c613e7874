"""Deployment: ONNX / TorchScript export, inference without PyTorch, faster PyTorch inference.

- ``deploy.onnx_export``: export a DB model (deformable convolution included) to ONNX / TorchScript.
- ``deploy.onnx_predictor``: ``OnnxDetector``, images -> polygons with ONNX Runtime; it imports no torch.
- ``deploy.optimize``: BatchNorm folding, channels_last, torch.compile, reduced precision, ONNX Runtime quantisation.
- ``deploy.cli``: the --optimize / --precision options of demo.py and eval.py (no torch).
- ``deploy.precision``: ``--precision auto``: CPU flags, the int8 check stored at export, the choice (no torch).

This ``__init__`` imports nothing, so that ``deploy.onnx_predictor`` stays free of torch.
"""
