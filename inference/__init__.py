"""Inference: images in, text polygons out, on the fastest exact path; export and quantisation. One job per module,
from the bottom up:

- ``inference.detector``: ``Detector``: resize, batch by size, a forward function, the representer (no torch).
- ``inference.thresholds``: the box_thresh default and where a run's box_thresh comes from (no torch).
- ``inference.precision``: ``--precision auto`` for the PyTorch model, and whether a precision runs on a device.
- ``inference.deform_conv``: deformable convolution without torchvision's kernel (ONNX export, optimised CPU path).
- ``inference.optimized``: the optimised PyTorch model (BatchNorm folded, channels_last, autocast, torch.compile).
- ``inference.onnx_export``: ONNX / TorchScript export.
- ``inference.onnx_cache``: the verified export cache of the default CPU path.
- ``inference.onnx_runtime``: ``OnnxDetector`` and the ONNX Runtime forward function (no torch).
- ``inference.quantize``: int8 quantisation of an ONNX model; ``inference.int8_check``: when its int8 copy may run.
- ``inference.paths``: which path runs (plain, optimised, ONNX Runtime) and building it.
- ``inference.build``: ``detector_from_experiment``: the detector of an experiment and a checkpoint.
- ``inference.arguments``: the --plain / --optimize / --precision / --compile / --cache_dir options of the scripts.

Nothing below this package imports it. This ``__init__`` imports nothing, so that the ONNX Runtime path stays free
of torch.
"""
