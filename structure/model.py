"""Model assembly: backbone + decoder, wrapped so state-dict keys match the original release."""

import os
import types

import torch
import torch.nn as nn

import backbones
import decoders
from concern.config import ConfigError
from concern.registry import lookup
from data.processes.normalize_image import NormalizeImage


class ModuleHolder(nn.Module):
    """Holds ``module`` under the attribute name ``module`` and forwards calls to it, so its
    state-dict keys read ``module.*`` exactly as the original's ``nn.DataParallel`` wrapper did,
    without any data parallelism (wrapping for DDP/DataParallel is the trainer's job)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def _lookup(package, name, kind):
    """``package.name`` (a public class or function of the package); an unknown name is an UnknownNameError."""
    known = {
        n: v
        for n, v in vars(package).items()
        if not n.startswith('_') and callable(v) and not isinstance(v, types.ModuleType)
    }
    return lookup(known, name, kind, f'model_args.{kind}')


class BasicModel(nn.Module):
    """``backbone`` then ``decoder``, both named in ``args`` (the YAML's model_args).

    forward(data (N, 3, H, W), **decoder_kwargs) -> the decoder's output (see SegDetector).
    """

    def __init__(self, args):
        super().__init__()
        self.backbone = _lookup(backbones, args['backbone'], 'backbone')(**args.get('backbone_args', {}))
        self.decoder = _lookup(decoders, args['decoder'], 'decoder')(**args.get('decoder_args', {}))

    def forward(self, data, *args, **kwargs):
        return self.decoder(self.backbone(data), *args, **kwargs)


class SegDetectorModel(nn.Module):
    """The DB model: ``self.model = ModuleHolder(BasicModel)`` (keys ``model.module.backbone.*``
    and ``model.module.decoder.*``, as the original's release files) plus the criterion.

    args: the YAML's model_args {backbone, backbone_args, decoder, decoder_args, loss_class,
    loss_args, loss_kwargs}; without loss_class the model can only run inference.
    forward(batch, training=None): batch is a dict with 'image' (N, 3, H, W) (or the image
    tensor): float32 normalised, or uint8 from NormalizeImage(on_device=True), normalised here on the
    model's device; training defaults to ``self.training`` (``model.train()`` / ``model.eval()``), as in the
    original. training=True returns (loss, pred, metrics) with pred = {'binary', 'thresh',
    'thresh_binary'} each (N, 1, H, W); training=False returns the probability map (N, 1, H, W).
    """

    def __init__(self, args, device=None):
        super().__init__()
        self.args = dict(args)
        for key in ('backbone', 'decoder'):
            if key not in self.args:
                raise ConfigError(
                    f"SegDetectorModel: model_args has no `{key}`; add it to the experiment's builder.model_args."
                )
        self.model = ModuleHolder(BasicModel(self.args))
        self.criterion = None
        if self.args.get('loss_class') is not None:
            from decoders.seg_detector_loss import SegDetectorLossBuilder

            self.criterion = SegDetectorLossBuilder(
                self.args['loss_class'], *self.args.get('loss_args', []), **self.args.get('loss_kwargs', {})
            ).build()
        if device is not None:
            self.to(device)

    @staticmethod
    def model_name(args):
        return os.path.join('seg_detector', args['backbone'], str(args.get('loss_class')))

    @property
    def device(self):
        return next(self.parameters()).device

    def forward(self, batch, training=None):
        if training is None:
            training = self.training
        device = self.device
        data = batch['image'] if isinstance(batch, dict) else batch
        data = data.to(device)
        # a uint8 image is NormalizeImage(on_device=True)'s: normalised here, on the model's device
        data = NormalizeImage.normalize_tensor(data) if data.dtype == torch.uint8 else data.float()
        pred = self.model(data, training=training)
        if not training:
            return pred
        if self.criterion is None:
            raise RuntimeError(
                'SegDetectorModel: training=True needs a loss; set `loss_class` in model_args (e.g. L1BalanceCELoss).'
            )
        if not isinstance(batch, dict):
            raise TypeError(
                'SegDetectorModel: training needs a batch dict with the labels '
                '(gt, mask, thresh_map, thresh_mask), not a bare tensor.'
            )
        batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
        loss, metrics = self.criterion(pred, batch)
        return loss, pred, metrics
