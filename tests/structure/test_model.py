"""SegDetectorModel: the original release's key names, key-for-key loading, save/load round trip."""

import pytest
import torch

from concern.checkpoint_io import load_checkpoint, load_model_weights, save_checkpoint
from structure import Builder, SegDetectorModel
from tests.decoders.test_seg_detector import BN, original_head_keys

R50_ARGS = dict(
    backbone='deformable_resnet50',
    backbone_args=dict(pretrained=False),
    decoder='SegDetector',
    decoder_args=dict(adaptive=True, in_channels=[256, 512, 1024, 2048], k=50),
)


def original_resnet_keys(layers, bottleneck, deformable):
    """Keys of the original's backbones/resnet.py ResNet, written from its code."""
    keys = ['conv1.weight'] + [f'bn1.{k}' for k in BN]
    convs = (1, 2, 3) if bottleneck else (1, 2)
    for stage, blocks in enumerate(layers, start=1):
        for block in range(blocks):
            prefix = f'layer{stage}.{block}.'
            for conv in convs:
                keys.append(prefix + f'conv{conv}.weight')
                keys += [prefix + f'bn{conv}.{k}' for k in BN]
            if deformable and stage > 1:
                keys += [prefix + 'conv2_offset.weight', prefix + 'conv2_offset.bias']
            if block == 0 and (stage > 1 or bottleneck):
                keys.append(prefix + 'downsample.0.weight')
                keys += [prefix + f'downsample.1.{k}' for k in BN]
    return keys + ['fc.weight', 'fc.bias', 'smooth.weight', 'smooth.bias']


def release_keys(layers, bottleneck, deformable):
    return ['model.module.backbone.' + k for k in original_resnet_keys(layers, bottleneck, deformable)] + [
        'model.module.decoder.' + k for k in original_head_keys(adaptive=True)
    ]


def fake_release(model, seed):
    """A release-like bare state dict: every key named as the original, random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if value.dtype.is_floating_point:
            noise = (
                torch.rand(value.shape, generator=generator)
                if 'running_var' in key
                else torch.randn(value.shape, generator=generator) * 0.05
            )
            state[key] = noise + (0.5 if 'running_var' in key else 0)
        else:
            state[key] = value.clone()
    return state


def test_state_dict_keys_are_the_originals():
    model = SegDetectorModel(R50_ARGS)
    keys = list(model.state_dict())
    assert sorted(keys) == sorted(release_keys([3, 4, 6, 3], True, True))
    for name in (
        'model.module.backbone.layer2.0.conv2_offset.weight',
        'model.module.decoder.binarize.0.weight',
        'model.module.decoder.thresh.6.bias',
        'model.module.decoder.in5.weight',
        'model.module.decoder.out5.0.weight',
    ):
        assert name in keys
    r18 = SegDetectorModel(
        dict(
            backbone='deformable_resnet18',
            backbone_args=dict(pretrained=False),
            decoder='SegDetector',
            decoder_args=dict(adaptive=True, k=50),
        )
    )
    assert sorted(r18.state_dict()) == sorted(release_keys([2, 2, 2, 2], False, True))


def test_release_file_loads_key_for_key_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = SegDetectorModel(R50_ARGS).eval()
    release = tmp_path / 'totaltext_resnet50'
    torch.save(fake_release(model, seed=1), release)  # bare state dict, like the original's

    fresh = Builder('SegDetectorModel', R50_ARGS).build().eval()
    missing, unexpected = load_model_weights(fresh, str(release), strict=True)
    assert missing == [] and unexpected == []
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first = fresh({'image': image}, training=False)
    assert tuple(first.shape) == (1, 1, 32, 32)
    state = torch.load(release, weights_only=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key

    # this project's checkpoint format, saved and loaded again: same outputs
    path = tmp_path / 'model' / 'final'
    save_checkpoint(
        {'model': fresh.state_dict(), 'epoch': 3, 'iteration': 42, 'config': {'backbone': 'deformable_resnet50'}}, path
    )
    again = SegDetectorModel(R50_ARGS).eval()
    assert load_model_weights(again, path, strict=True) == ([], [])
    assert load_checkpoint(path)['iteration'] == 42
    with torch.no_grad():
        torch.testing.assert_close(again({'image': image}, training=False), first, rtol=0, atol=0)


def test_prefixless_state_dict_loads():
    torch.manual_seed(2)
    args = dict(
        backbone='deformable_resnet18',
        backbone_args=dict(pretrained=False),
        decoder='SegDetector',
        decoder_args=dict(adaptive=True, k=50),
    )
    source = SegDetectorModel(args)
    bare = {k[len('model.module.') :]: v for k, v in source.state_dict().items()}
    target = SegDetectorModel(args)
    assert load_model_weights(target, bare, strict=True) == ([], [])
    assert torch.equal(target.model.module.decoder.in5.weight, source.model.module.decoder.in5.weight)


def test_asf_and_mobilenet_models_run():
    for args in (
        dict(
            backbone='resnet18',
            backbone_args=dict(pretrained=False),
            decoder='SegSpatialScaleDetector',
            decoder_args=dict(adaptive=True, k=50, attention_type='scale_channel_spatial'),
        ),
        dict(
            backbone='mobilenet_v3_large',
            decoder='SegDetector',
            decoder_args=dict(adaptive=True, in_channels=[24, 40, 112, 960], k=50),
        ),
    ):
        model = SegDetectorModel(args).eval()
        with torch.no_grad():
            out = model({'image': torch.randn(2, 3, 64, 64)}, training=False)
        assert tuple(out.shape) == (2, 1, 64, 64)
        keys = list(model.state_dict())
        assert all(k.startswith(('model.module.backbone.', 'model.module.decoder.')) for k in keys)


def test_training_without_loss_class_is_a_clear_error():
    model = SegDetectorModel(
        dict(
            backbone='resnet18',
            backbone_args=dict(pretrained=False),
            decoder='SegDetector',
            decoder_args=dict(adaptive=True),
        )
    )
    with pytest.raises(RuntimeError, match='loss_class'):
        model({'image': torch.randn(2, 3, 32, 32)}, training=True)
    # the raw head's train-mode output is the DB triple
    pred = model.model(torch.randn(2, 3, 32, 32), training=True)
    assert sorted(pred) == ['binary', 'thresh', 'thresh_binary']


def test_builder_name_and_unknown_backbone():
    builder = Builder('SegDetectorModel', dict(R50_ARGS, loss_class='L1BalanceCELoss'))
    assert builder.model_name == 'SegDetectorModel-seg_detector/deformable_resnet50/L1BalanceCELoss'
    with pytest.raises(ValueError, match='resnet50'):
        Builder('SegDetectorModel', dict(R50_ARGS, backbone='resnet_50')).build()


def test_forward_follows_train_and_eval_mode_by_default():
    model = SegDetectorModel(
        dict(
            backbone='resnet18',
            backbone_args=dict(pretrained=False),
            decoder='SegDetector',
            decoder_args=dict(adaptive=True, k=50),
            loss_class='L1BalanceCELoss',
        )
    )
    size = 32
    batch = {
        'image': torch.randn(2, 3, size, size),
        'gt': torch.zeros(2, 1, size, size),
        'mask': torch.ones(2, size, size),
        'thresh_map': torch.full((2, size, size), 0.3),
        'thresh_mask': torch.ones(2, size, size),
    }
    model.eval()
    with torch.no_grad():
        probability = model(batch)
    assert isinstance(probability, torch.Tensor) and tuple(probability.shape) == (2, 1, size, size)
    model.train()
    loss, pred, metrics = model(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and sorted(pred) == ['binary', 'thresh', 'thresh_binary']
    assert isinstance(model.eval()(batch, training=True), tuple)  # an explicit argument still wins


def test_uint8_image_is_normalised_by_the_model_as_by_normalize_image():
    """NormalizeImage(on_device=True) leaves a uint8 image; the model's forward normalises it with the very bits
    NormalizeImage gives on the CPU, so the outputs are identical (training loss included)."""
    import numpy as np

    from data.processes import NormalizeImage

    torch.manual_seed(0)
    args = dict(
        backbone='resnet18',
        backbone_args=dict(pretrained=False),
        decoder='SegDetector',
        decoder_args=dict(adaptive=True, in_channels=[64, 128, 256, 512], k=50),
        loss_class='L1BalanceCELoss',
    )
    model = SegDetectorModel(args).eval()
    images = (np.random.RandomState(0).rand(2, 64, 64, 3) * 255).astype(np.float32)
    on_device = torch.stack([NormalizeImage(on_device=True)(dict(image=image))['image'] for image in images])
    on_cpu = torch.stack([NormalizeImage()(dict(image=np.rint(image)))['image'] for image in images])
    assert on_device.dtype == torch.uint8 and on_cpu.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(model(on_device), model(on_cpu))
        labels = dict(
            gt=torch.zeros(2, 1, 64, 64),
            mask=torch.ones(2, 64, 64),
            thresh_map=torch.full((2, 64, 64), 0.3),
            thresh_mask=torch.ones(2, 64, 64),
        )
        labels['gt'][:, :, 20:30, 10:50] = 1
        loss_device, _, _ = model(dict(image=on_device, **labels), training=True)
        loss_cpu, _, _ = model(dict(image=on_cpu, **labels), training=True)
    assert torch.equal(loss_device, loss_cpu)
