#!/usr/bin/env python
"""Export a trained DBNet model to ONNX (and optionally TorchScript).

    python convert_to_onnx.py experiments/seg_detector/totaltext_resnet50_deform_thre.yaml \\
        --resume pretrained/totaltext_resnet50 --output totaltext_resnet50.onnx [--opset 17] \\
        [--torchscript totaltext_resnet50.pt] [--int8 totaltext_resnet50.int8.onnx --calibration_images photos/]

The ONNX model takes ``image`` (N, 3, H, W) float32, normalised as in training (BGR minus the mean, divided
by 255; H and W multiples of 32), with dynamic batch, height and width, and returns ``probability``
(N, 1, H, W). Deformable convolutions are exported as GridSample + MatMul (see inference/deform_conv.py), so
ONNX Runtime runs every model. The experiment's representer arguments are stored in the file's metadata,
which ``inference.onnx_runtime.OnnxDetector`` and ``demo.py --onnx`` read. After writing, the file is run
with ONNX Runtime on a random input and compared with PyTorch (the maximum difference is printed).

``--int8 PATH`` also writes an int8 copy for CPU inference with ONNX Runtime (``inference.quantize.quantize_onnx``):
static by default, its activation ranges calibrated on ``--calibration_images`` (a folder of typical images,
resized as demo.py does; not the images you evaluate on), or ``--int8_mode dynamic`` (no calibration; slower
than float32 on CPUs without VNNI). It keeps the metadata, so ``demo.py --onnx PATH`` runs it as it is. A static
int8 copy is then checked against the float model on the calibration images (largest probability difference,
pixels crossing the threshold, agreement of the boxes); the result goes into both files' metadata, where
``demo.py --onnx MODEL.onnx --precision auto`` reads it (``inference/int8_check.py``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys

from concern.cli import run_main
from concern.errors import UserError, import_optional
from concern.model_zoo import add_model_argument, use_shipped_model
from inference.quantize import calibration_inputs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a DBNet model to ONNX / TorchScript.')
    parser.add_argument('exp', nargs='?', help='experiment YAML file (or --model NAME)')
    parser.add_argument('--resume', help="checkpoint (this project's or the original's)")
    add_model_argument(parser)
    parser.add_argument(
        '--non_strict',
        action='store_true',
        help='load a checkpoint that does not fit the experiment (missing keys or other shapes): '
        'the matching keys only, as the original did (default: refuse it)',
    )
    parser.add_argument('--output', required=True, help='the ONNX file to write')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (16 or later: GridSample)')
    parser.add_argument('--torchscript', metavar='PATH', help='also write a traced TorchScript model here')
    parser.add_argument(
        '--example_size',
        type=int,
        nargs=2,
        default=(736, 1280),
        metavar=('H', 'W'),
        help='image size traced for the export and used for the check (any size runs later)',
    )
    parser.add_argument('--no_check', action='store_true', help='skip the ONNX Runtime vs PyTorch check')
    parser.add_argument('--int8', metavar='PATH', help='also write an int8-quantised copy here (ONNX Runtime, CPU)')
    parser.add_argument(
        '--int8_mode',
        choices=['static', 'dynamic'],
        default='static',
        help='static: int8 activations calibrated on --calibration_images (default); dynamic: none',
    )
    parser.add_argument(
        '--int8_ops',
        choices=['conv', 'all'],
        default='conv',
        help='static int8: conv = convolutions and the deformable products; all = also the adds, ReLU, '
        'concatenation, upsampling and pooling (fewer conversions: faster; check its F change)',
    )
    parser.add_argument(
        '--calibration_images',
        metavar='FOLDER',
        help='images for the static int8 calibration (searched recursively; typical inputs)',
    )
    parser.add_argument('--calibration_count', type=int, default=16, help='at most this many calibration images')
    parser.add_argument(
        '--image_short_side',
        type=int,
        default=736,
        help='calibration images are resized to this short side, as demo.py does',
    )
    parser.add_argument('--opt', action='append', default=[], metavar='PATH=VALUE', help='override a config value')
    args = parser.parse_args(argv)
    use_shipped_model(args, parser)
    if args.int8 and args.int8_mode == 'static' and not args.calibration_images:
        parser.error(
            '--int8 with --int8_mode static needs --calibration_images FOLDER (a few dozen typical images), '
            'or use --int8_mode dynamic.'
        )
    return args


def check_int8(float_path: str, int8_path: str, inputs: list, representer) -> dict:
    """Run both models on ``inputs`` (the calibration images), print and store the comparison in both files'
    metadata (``inference.int8_check.record_int8_check``; ``--precision auto`` reads it). Returns the comparison."""
    import onnxruntime

    from inference.int8_check import MAX_DISAGREEMENT, measure_precision_change, record_int8_check
    from inference.onnx_runtime import onnx_forward

    def forward(path):
        return onnx_forward(onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider']))

    check = measure_precision_change(forward(float_path), forward(int8_path), inputs, representer)
    record_int8_check(float_path, int8_path, check)
    verdict = 'within' if check['detection_agreement'] >= 1 - MAX_DISAGREEMENT else 'NOT within'
    print(
        f'int8 check on the {check["images"]} calibration images: detections agree with fp32 at F '
        f'{check["detection_agreement"]:.4f} ({check["boxes"]} boxes), max |dp| '
        f'{check["max_probability_difference"]:.3f}, {100 * check["binary_flip_fraction"]:.3f}% of pixels '
        f'flip; {verdict} the bound of --precision auto ({1 - MAX_DISAGREEMENT}); stored in both files'
    )
    return check


def representer_arguments(representer) -> dict:
    """The representer's constructor arguments (without ``cmd``), read back from the object."""
    names = [name for name in inspect.signature(type(representer).__init__).parameters if name not in ('self', 'cmd')]
    return {name: getattr(representer, name) for name in names if hasattr(representer, name)}


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    import_optional('onnx', 'convert_to_onnx.py')
    if not args.no_check or args.int8:
        import_optional(
            'onnxruntime', 'convert_to_onnx.py (its ONNX Runtime check and --int8; --no_check skips the check)'
        )
    import numpy as np
    import torch

    from concern.runtime import build_model_with_weights, load_experiment_for_inference
    from inference.onnx_export import export_onnx, export_torchscript
    from inference.onnx_runtime import REPRESENTER_METADATA_KEY
    from inference.thresholds import resolve_box_thresh

    if args.example_size[0] % 32 or args.example_size[1] % 32:
        raise UserError(f'--example_size {args.example_size[0]} {args.example_size[1]} must be multiples of 32.')
    config = load_experiment_for_inference(args.exp, args.opt)
    structure = config.build('Experiment.structure')
    # the threshold demo.py --onnx uses by default: the one demo.py would use with the experiment file
    box_thresh, source = resolve_box_thresh(None, config)
    structure.representer.box_thresh = box_thresh
    print(f'box_thresh {box_thresh} stored in the metadata (from {source})', flush=True)
    model = build_model_with_weights(structure, args.resume, torch.device('cpu'), strict=not args.non_strict)
    calibration = (
        calibration_inputs(
            args.calibration_images, args.calibration_count, args.image_short_side, structure.representer
        )
        if args.int8 and args.int8_mode == 'static'
        else None
    )
    metadata = {
        REPRESENTER_METADATA_KEY: json.dumps(representer_arguments(structure.representer)),
        'dbnet.experiment': args.exp,
        'dbnet.checkpoint': args.resume,
    }
    export_onnx(model, args.output, opset_version=args.opset, example_size=tuple(args.example_size), metadata=metadata)
    print(f'wrote {args.output}')
    if args.torchscript:
        export_torchscript(model, args.torchscript, example_size=tuple(args.example_size))
        print(f'wrote {args.torchscript}')
    if not args.no_check:
        import onnxruntime

        session = onnxruntime.InferenceSession(args.output, providers=['CPUExecutionProvider'])
        image = torch.randn(1, 3, *args.example_size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = model(image, training=False).numpy()
        got = session.run(None, {'image': image.numpy()})[0]
        difference = float(np.abs(got - expected).max())
        print(
            f'check: ONNX Runtime vs PyTorch on a random {args.example_size[0]}x{args.example_size[1]} '
            f'input: max abs difference {difference:.2e}'
        )
        if difference > 1e-3:
            print(
                'error: the exported model does not match PyTorch; please report this with the experiment file.',
                file=sys.stderr,
            )
            return 1
    if args.int8:
        from inference.quantize import quantize_onnx

        options = {'op_types': args.int8_ops} if args.int8_mode == 'static' else {}
        quantize_onnx(args.output, args.int8, mode=args.int8_mode, calibration_images=calibration, **options)
        detail = f'calibrated on {len(calibration)} images' if calibration else 'dynamic'
        print(f'wrote {args.int8} (int8, {detail}; its F-measure change: benchmarks/bench_inference.py)')
        if calibration:
            check_int8(args.output, args.int8, calibration, structure.representer)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
