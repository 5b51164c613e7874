# Builder and the models import torch; they are imported on first access (PEP 562 ``__getattr__``) so
# that this package's torch-free modules (representers, visualizers) also serve the ONNX Runtime path
# (inference/onnx_runtime.py), where torch may not be installed.
_LAZY = {'Builder': 'structure.builder', 'BasicModel': 'structure.model', 'SegDetectorModel': 'structure.model'}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'structure' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
