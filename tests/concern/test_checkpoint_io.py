"""Checkpoint I/O: safe loading, key reporting, atomic saving."""

import logging
import os

import pytest
import torch
import torch.nn as nn

from concern import checkpoint_io as checkpoint
from concern.checkpoint_io import load_checkpoint, load_model_weights, save_checkpoint


class Evil:
    def __reduce__(self):
        return (os.system, ('touch /tmp/should_never_exist_dbnet',))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'model': Evil()}, path)
    with pytest.raises(RuntimeError, match='refused') as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not os.path.exists('/tmp/should_never_exist_dbnet')


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint(tmp_path / 'nope.pth')
    good = tmp_path / 'good.pth'
    torch.save({'a': torch.ones(3)}, good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(RuntimeError, match='truncated.pth.*corrupt'):
        load_checkpoint(truncated)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint at all' * 20)
    with pytest.raises(RuntimeError, match='garbage.pth.*corrupt'):
        load_checkpoint(garbage)


def test_missing_unexpected_and_mismatched_keys(caplog):
    model = Tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del state['bn.running_mean']
    state['extra.weight'] = torch.zeros(1)
    state['conv.bias'] = torch.zeros(5)  # wrong shape
    with caplog.at_level(logging.WARNING):
        missing, unexpected = load_model_weights(Tiny(), state)
    assert missing == ['bn.running_mean', 'conv.bias']
    assert unexpected == ['extra.weight']
    text = caplog.text
    assert 'bn.running_mean' in text and 'extra.weight' in text and 'conv.bias' in text
    with pytest.raises(RuntimeError) as info:
        load_model_weights(Tiny(), state, strict=True)
    for name in ('bn.running_mean', 'extra.weight', 'conv.bias'):
        assert name in str(info.value)


def test_prefixes_are_aligned():
    source = Tiny()
    target = Tiny()
    wrapped = {'model.module.' + k: v for k, v in source.state_dict().items()}
    assert load_model_weights(target, wrapped, strict=True) == ([], [])
    assert torch.equal(target.conv.weight, source.conv.weight)
    ddp = {'module.' + k: v for k, v in source.state_dict().items()}
    assert load_model_weights(Tiny(), {'model': ddp}, strict=True) == ([], [])


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / 'ckpt' / 'latest'
    save_checkpoint({'epoch': 1, 'model': {'w': torch.ones(2)}}, path)

    real_save = torch.save

    def crash_midway(obj, stream, *args, **kwargs):
        stream.write(b'PK\x03\x04 half of a zip')
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(checkpoint.torch, 'save', crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'epoch': 2, 'model': {'w': torch.zeros(2)}}, path)
    monkeypatch.setattr(checkpoint.torch, 'save', real_save)

    assert load_checkpoint(path)['epoch'] == 1
    assert os.listdir(path.parent) == ['latest']  # no temporary file left behind
    save_checkpoint({'epoch': 3}, path)
    assert load_checkpoint(path) == {'epoch': 3}
    assert os.listdir(path.parent) == ['latest']
