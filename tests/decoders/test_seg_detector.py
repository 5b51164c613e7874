"""DB and DB++ heads: outputs, names as the original's, initialisation, step function."""

import pytest
import torch

from decoders import ScaleFeatureSelection, SegDetector, SegSpatialScaleDetector

BN = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']


def features(batch=2, size=16, channels=(64, 128, 256, 512)):
    return [torch.randn(batch, c, size // 2**i, size // 2**i) for i, c in enumerate(channels)]


def original_head_keys(adaptive, bias=False):
    """Keys of the original's SegDetector (decoders/seg_detector.py), written from its code."""
    keys = []
    for level in (5, 4, 3, 2):
        keys.append(f'in{level}.weight')
        if bias:
            keys.append(f'in{level}.bias')
    for level in (5, 4, 3):
        keys.append(f'out{level}.0.weight')
    keys.append('out2.weight')
    branches = ['binarize'] + (['thresh'] if adaptive else [])
    for branch in branches:
        keys.append(f'{branch}.0.weight')
        keys += [f'{branch}.1.{k}' for k in BN]
        keys += [f'{branch}.3.weight', f'{branch}.3.bias']
        keys += [f'{branch}.4.{k}' for k in BN]
        keys += [f'{branch}.6.weight', f'{branch}.6.bias']
    return keys


@pytest.mark.parametrize('adaptive', [False, True])
def test_seg_detector_keys_match_the_original(adaptive):
    head = SegDetector(adaptive=adaptive, k=50)
    assert sorted(head.state_dict()) == sorted(original_head_keys(adaptive))


def test_seg_detector_outputs():
    torch.manual_seed(0)
    head = SegDetector(adaptive=True, k=50)
    feats = features()
    result = head(feats, training=True)
    assert list(result) == ['binary', 'thresh', 'thresh_binary']
    for value in result.values():
        assert tuple(value.shape) == (2, 1, 64, 64)
        assert (value >= 0).all() and (value <= 1).all()
    expected = 1 / (1 + torch.exp(-50 * (result['binary'] - result['thresh'])))
    torch.testing.assert_close(result['thresh_binary'], expected)
    head.eval()
    probability = head(feats)
    assert isinstance(probability, torch.Tensor) and tuple(probability.shape) == (2, 1, 64, 64)
    # without adaptive, training gives the probability map only
    assert list(SegDetector()(feats, training=True)) == ['binary']


def test_default_arguments_are_the_originals():
    head = SegDetector()
    assert head.k == 10 and not head.adaptive and not head.serial
    assert head.in5.in_channels == 512 and head.in2.in_channels == 64
    assert head.in5.out_channels == 256 and head.out2.out_channels == 64
    assert head.in5.bias is None


def test_initialisation():
    torch.manual_seed(1)
    head = SegDetector(adaptive=True, inner_channels=64)
    for bn in (head.binarize[1], head.binarize[4], head.thresh[1], head.thresh[4]):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 1e-4)
    # kaiming normal (fan_in): std = sqrt(2 / fan_in)
    weight = head.in2.weight
    expected_std = (2 / weight[0].numel()) ** 0.5
    assert abs(weight.std().item() - expected_std) / expected_std < 0.1


def test_serial_and_smooth_thresh_branch():
    torch.manual_seed(2)
    head = SegDetector(adaptive=True, serial=True, smooth=True, inner_channels=64)
    assert head.thresh[0].in_channels == 64 + 1
    result = head(features(batch=1), training=True)
    assert tuple(result['thresh'].shape) == (1, 1, 64, 64)


@pytest.mark.parametrize(
    'attention_type,attention_keys',
    [
        ('scale_spatial', ['spatial_wise.0.weight', 'spatial_wise.2.weight', 'attention_wise.0.weight']),
        (
            'scale_channel_spatial',
            [
                'channel_wise.1.weight',
                'channel_wise.3.weight',
                'spatial_wise.0.weight',
                'spatial_wise.2.weight',
                'attention_wise.0.weight',
            ],
        ),
        ('scale_channel', ['fc1.weight', 'fc2.weight'] + [f'bn.{k}' for k in BN]),
    ],
)
def test_asf_keys_and_outputs(attention_type, attention_keys):
    torch.manual_seed(3)
    head = SegSpatialScaleDetector(adaptive=True, k=50, attention_type=attention_type)
    expected = (
        original_head_keys(True)
        + ['concat_attention.conv.weight', 'concat_attention.conv.bias']
        + [f'concat_attention.enhanced_attention.{k}' for k in attention_keys]
    )
    assert sorted(head.state_dict()) == sorted(expected)
    result = head(features(), training=True)
    assert {k: tuple(v.shape) for k, v in result.items()} == {
        'binary': (2, 1, 64, 64),
        'thresh': (2, 1, 64, 64),
        'thresh_binary': (2, 1, 64, 64),
    }
    head.eval()
    assert tuple(head(features()).shape) == (2, 1, 64, 64)


def test_scale_feature_selection_weights_each_scale():
    torch.manual_seed(4)
    selection = ScaleFeatureSelection(8, 4, attention_type='scale_channel').eval()
    maps = [torch.randn(1, 2, 5, 5) for _ in range(4)]
    out = selection(torch.cat(maps, 1), maps)
    score = selection.enhanced_attention(selection.conv(torch.cat(maps, 1)))
    assert torch.allclose(score.sum(1), torch.ones(1, 1, 1))  # softmax over the scales
    for i in range(4):
        torch.testing.assert_close(out[:, 2 * i : 2 * i + 2], score[:, i : i + 1] * maps[i])


def test_asf_rejects_unknown_attention_and_fpn_false():
    with pytest.raises(ValueError, match='attention_type'):
        SegSpatialScaleDetector(attention_type='scale_nothing')
    with pytest.raises(ValueError, match='fpn'):
        SegSpatialScaleDetector(fpn=False)


def test_maps_stay_float32_and_unsaturated_under_reduced_precision_autocast():
    """A logit of 10 is sigmoid 0.99995 in float32 but exactly 1.0 in bf16 (and fp16), which the BCE loss would
    read as log(0) on a confident negative: the head's sigmoids and binarization run in float32."""
    torch.manual_seed(0)
    head = SegDetector(adaptive=True, k=50, inner_channels=64).eval()
    with torch.no_grad():
        head.binarize[-2].weight.zero_()  # the logit is the bias: 10 everywhere
        head.binarize[-2].bias.fill_(10.0)
    feats = features(batch=1, size=8)
    with torch.no_grad():
        reference = head(feats, training=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = head(feats, training=True)
            assert torch.sigmoid(torch.tensor([10.0], dtype=torch.bfloat16)).item() == 1.0  # what is avoided
    for key in ('binary', 'thresh', 'thresh_binary'):
        assert low[key].dtype == torch.float32, key
    assert torch.allclose(low['binary'], reference['binary']) and (low['binary'] < 1).all()
