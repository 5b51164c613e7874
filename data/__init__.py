"""Datasets, format readers, the synthetic text generator and the data loaders named by the YAML files."""
from .data_loader import DataLoader, ICDARCollectFN
from .image_dataset import ImageDataset
from .synth import SyntheticTextDataset

__all__ = ['DataLoader', 'ICDARCollectFN', 'ImageDataset', 'SyntheticTextDataset']
