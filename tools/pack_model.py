"""Packs a trained checkpoint into the file shipped in assets/models/: the experiment model's weights only (keys the
model lacks, such as the original's unused ``fc`` / ``smooth``, left out), floating-point weights stored as float16
and BatchNorm statistics as float32 (a running variance can pass float16's 65504), keys as in the original's
release files (``model.module.``). Prints the file's SHA-256 (for concern/model_zoo.py) and how far the packed
model's probability map is from the checkpoint's on a real photograph.
Keys of the checkpoint that the model lacks are a warning, not an error (the unused layers left out on purpose).

    python -m tools.pack_model workspace/release/finetune/model/final --experiment assets/models/ic15_resnet18.yaml \
        --out assets/models/ic15_resnet18.pth
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

if __package__ in (None, ''):  # run by its path: python tools/pack_model.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from concern.checkpoint_io import load_model_weights
from concern.cli import run_main
from concern.runtime import load_experiment_for_inference


def packed_state(model: torch.nn.Module) -> dict:
    """``model``'s (a SegDetectorModel: keys ``model.module.``) state dict for shipping: BatchNorm buffers float32,
    other floating tensors float16."""
    state = {}
    for key, value in model.state_dict().items():
        statistics = key.endswith(('running_mean', 'running_var'))
        if value.is_floating_point() and not statistics:
            value = value.half()
        state[key] = value.detach().cpu().clone()
    return state


def probability(model, image):
    with torch.inference_mode():
        return model(image, training=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Pack a checkpoint into a shipped model file (float16).')
    parser.add_argument('checkpoint', help='a checkpoint of this project or a weights-only file')
    parser.add_argument('--experiment', required=True, help='the shipped experiment file the weights are for')
    parser.add_argument('--out', required=True, help='the file to write')
    args = parser.parse_args(argv)
    from inference.onnx_cache import verification_image

    structure = load_experiment_for_inference(args.experiment).build('Experiment.structure')
    model = structure.builder.build(torch.device('cpu')).eval()
    load_model_weights(model, args.checkpoint, fitting=True)
    image = verification_image()
    expected = probability(model, image)
    torch.save(packed_state(model), args.out)
    load_model_weights(model, args.out, fitting=True)
    difference = float((probability(model, image) - expected).abs().max())
    with open(args.out, 'rb') as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    print(f'wrote {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB, sha256 {digest}')
    print(f'probability map of the packed model vs the checkpoint on a photograph: max difference {difference:.1e}')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
