"""Datasets, format readers, the synthetic text generator and the data loaders named by the YAML files."""

__all__ = ['DataLoader', 'ICDARCollectFN', 'ImageDataset', 'SyntheticTextDataset']


# The classes above import torch; they are imported on the first attribute lookup on this package (PEP 562
# ``__getattr__``), all at once so that the config builder's list of known names stays complete, and so
# that the torch-free modules (data.image_io, data.normalization) serve the ONNX Runtime path without torch.
def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(f"module 'data' has no attribute {name!r}")
    from .data_loader import DataLoader, ICDARCollectFN
    from .image_dataset import ImageDataset
    from .synth import SyntheticTextDataset

    globals().update(
        DataLoader=DataLoader,
        ICDARCollectFN=ICDARCollectFN,
        ImageDataset=ImageDataset,
        SyntheticTextDataset=SyntheticTextDataset,
    )
    if name in globals():
        return globals()[name]
    raise AttributeError(f"module 'data' has no attribute {name!r}")
