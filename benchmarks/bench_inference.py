"""Inference speed on CPU: plain eval forward vs optimised PyTorch vs ONNX Runtime vs reduced precision.

For each model and input size it prints the model's GFLOPs (counted with torch.utils.flop_counter, plus
the deformable convs' multiply-adds, which the counter does not see), model-only images/s and achieved
GFLOP/s of each variant, its speed-up over the plain forward, the maximum probability difference from
the plain forward, end-to-end images/s (resize, normalise, forward, post-processing on a synthetic image
of that size) and whether the detections are identical to the plain forward's.

Variants: plain (model(x, training=False) under no_grad, as eval.py did originally), optimized
(deploy.optimize: folded BN, channels_last, inference_mode), onnx (ONNX Runtime, graph optimisations on),
bf16 (optimized + bf16 autocast; fast only on CPUs with AVX512-BF16 / AMX), int8 (ONNX Runtime static
QDQ quantisation calibrated on synthetic images).

The weights are random (no download), so the detections compare code paths, not accuracy: an F-measure
change needs a trained checkpoint (see docs/deployment.md).

    python benchmarks/bench_inference.py                               # every model, both sizes (~10 min, 2 cores)
    python benchmarks/bench_inference.py --models resnet18 --sizes 736x1280 --variants plain,optimized,onnx
"""
import argparse
import logging
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from assets.ops.dcn import DeformConv, ModulatedDeformConv  # noqa: E402
from deploy.onnx_export import export_onnx  # noqa: E402
from deploy.onnx_predictor import onnx_forward  # noqa: E402
from deploy.optimize import optimize_for_inference, optimized_forward, quantize_onnx  # noqa: E402
from structure.model import SegDetectorModel  # noqa: E402
from structure.predictor import Detector, torch_forward  # noqa: E402
from structure.representers import SegDetectorRepresenter  # noqa: E402

CHANNELS = {'resnet18': [64, 128, 256, 512], 'deformable_resnet18': [64, 128, 256, 512],
            'deformable_resnet50': [256, 512, 1024, 2048], 'mobilenet_v3_large': [24, 40, 112, 960]}
VARIANTS = ('plain', 'optimized', 'onnx', 'bf16', 'int8')


def build(backbone):
    torch.manual_seed(0)
    model = SegDetectorModel(dict(backbone=backbone, backbone_args=dict(pretrained=False), decoder='SegDetector',
                                  decoder_args=dict(adaptive=True, in_channels=CHANNELS[backbone], k=50)))
    return model.eval()


def count_gflops(model, height, width):
    """GFLOPs (2 x multiply-adds) of one forward at (height, width)."""
    from torch.utils.flop_counter import FlopCounterMode
    extra = []

    def hook(module, inputs, output):
        out_channels, in_channels, kh, kw = module.weight.shape
        extra.append(2 * out_channels * in_channels * kh * kw * output.shape[-2] * output.shape[-1])
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (DeformConv, ModulatedDeformConv))]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, height, width), training=False)
    for handle in handles:
        handle.remove()
    return (counter.get_total_flops() + sum(extra)) / 1e9


def timed(function, repeats):
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def synthetic_image(height, width):
    from data.synth import SyntheticTextDataset
    sample = SyntheticTextDataset(num_samples=1, seed=7, image_size=(height, width), is_training=False)[0]
    return sample['image']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(CHANNELS), choices=list(CHANNELS))
    parser.add_argument('--sizes', nargs='+', default=['736x1280', '800x800'], help='HxW, multiples of 32')
    parser.add_argument('--variants', default='plain,optimized,onnx,int8', help=f'comma list of {VARIANTS}')
    parser.add_argument('--repeats', type=int, default=2, help='timed runs per measurement (median)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(), help='CPU threads (torch and ORT)')
    args = parser.parse_args(argv)
    variants = args.variants.split(',')
    unknown = set(variants) - set(VARIANTS)
    if unknown or 'plain' not in variants:
        parser.error(f"--variants: unknown {sorted(unknown)} (known: {VARIANTS}); 'plain' is the baseline and needed.")
    warnings.filterwarnings('ignore')
    logging.getLogger().setLevel(logging.ERROR)  # the ONNX Runtime quantiser's advice on every layer
    torch.set_num_threads(args.threads)
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    flags = open('/proc/cpuinfo').read() if os.path.exists('/proc/cpuinfo') else ''
    print(f'torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads, '
          f'CPU bf16 support: {"yes" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"}')
    print(f"{'model':22s} {'size':9s} {'GFLOPs':>7s} {'variant':10s} {'img/s':>7s} {'GFLOP/s':>8s} {'speed-up':>8s} "
          f"{'max|dp|':>8s} {'e2e img/s':>9s} {'detections':>14s}")
    workdir = tempfile.mkdtemp(prefix='bench_inference_')
    for backbone in args.models:
        model = build(backbone)
        onnx_path = None
        for size in args.sizes:
            height, width = (int(v) for v in size.lower().split('x'))
            gflops = count_gflops(model, height, width)
            image = synthetic_image(height, width)
            representer = SegDetectorRepresenter(max_candidates=1000, box_thresh=0.6)
            inputs = Detector(None, representer, min(height, width)).preprocess(image)[None]
            forwards = {'plain': torch_forward(model, torch.device('cpu'))}
            if 'optimized' in variants or 'bf16' in variants:
                fast = optimize_for_inference(model)
                forwards['optimized'] = optimized_forward(fast, 'cpu')
                forwards['bf16'] = optimized_forward(fast, 'cpu', precision='bf16')
            if 'onnx' in variants or 'int8' in variants:
                if onnx_path is None:
                    onnx_path = export_onnx(model, os.path.join(workdir, f'{backbone}.onnx'), example_size=(128, 128))
                forwards['onnx'] = onnx_forward(onnxruntime.InferenceSession(onnx_path, options,
                                                                             providers=['CPUExecutionProvider']))
            if 'int8' in variants:
                calibration = [Detector(None, representer, 320).preprocess(synthetic_image(320, 320))[None]]
                int8_path = quantize_onnx(onnx_path, os.path.join(workdir, f'{backbone}.int8.onnx'), mode='static',
                                          calibration_images=calibration)
                forwards['int8'] = onnx_forward(onnxruntime.InferenceSession(int8_path, options,
                                                                             providers=['CPUExecutionProvider']))
            reference_map, reference_detections, plain_time = None, None, None
            for variant in [v for v in VARIANTS if v in variants]:
                forward = forwards[variant]
                seconds = timed(lambda: forward(inputs), args.repeats)
                probability = forward(inputs)
                detector = Detector(forward, representer, min(height, width))
                e2e = timed(lambda: detector.detect([image]), args.repeats)
                detections = detector.detect([image])[0]
                if variant == 'plain':
                    reference_map, reference_detections, plain_time = probability, detections, seconds
                same = (len(detections[0]) == len(reference_detections[0]) and
                        all(np.array_equal(a, b) for a, b in zip(detections[0], reference_detections[0])))
                print(f'{backbone:22s} {size:9s} {gflops:7.1f} {variant:10s} {1 / seconds:7.2f} {gflops / seconds:8.1f} '
                      f'{plain_time / seconds:7.2f}x {np.abs(probability - reference_map).max():8.1e} {1 / e2e:9.2f} '
                      f'{("same" if same else "DIFFERENT") + f" ({len(detections[0])})":>14s}', flush=True)


if __name__ == '__main__':
    main()
