"""Inference speed on CPU or GPU: plain eval forward vs optimised PyTorch vs ONNX Runtime vs reduced precision.

For each model and input size it prints the model's GFLOPs (counted with torch.utils.flop_counter, plus
the deformable convs' multiply-adds, which the counter does not see), model-only images/s and achieved
GFLOP/s of each variant, its speed-up over the plain forward, the maximum probability difference from
the plain forward, end-to-end images/s (resize, normalise, forward, post-processing on a synthetic image
of that size) and whether the detections are identical to the plain forward's.

Variants: plain (model(x, training=False) under no_grad, as eval.py did originally), optimized
(inference.optimized: folded BN, channels_last, inference_mode), onnx (ONNX Runtime, graph optimisations on),
compiled (optimized + torch.compile with frozen weights, dynamic shapes; its compile time is printed),
bf16 (optimized + bf16 autocast; on CPU fast only with AVX512-BF16 / AMX), compiled-bf16 (bf16 + torch.compile
as demo.py --precision bf16 --compile runs it: static shapes for the first size), fp16 (optimized + fp16 autocast,
GPU only), int8 (ONNX Runtime static QDQ quantisation, MinMax calibration on synthetic images; CPU only),
int8qop (static QOperator quantisation, Percentile calibration, the quantize_onnx default: the head's
deconvolutions stay float; CPU only), int8all (as int8qop, with every op the quantiser handles in int8: residual
adds, ReLU, concatenation, upsampling, pooling, the deformable mask multiply; CPU only),
int8dyn (ONNX Runtime dynamic quantisation; CPU only).

``--device cuda``: every PyTorch variant runs on the GPU (PyTorch's defaults: cuDNN convolutions may use
TF32, matrix products do not); onnx uses ONNX Runtime's CUDAExecutionProvider when the installed onnxruntime
has it (onnxruntime-gpu) and is refused otherwise. Model-only timings on the GPU run on an input already on
the GPU and end with a synchronisation (no host copies); end-to-end timings include every copy.
``--cudnn_benchmark`` lets cuDNN pick its fastest algorithms per input shape (every variant).
``--batch N`` times the model on N copies of the input per call (images/s counts all N).

Speed mode (default): random weights (no download), so the detections compare code paths, not accuracy.

Accuracy mode (``--checkpoint`` and ``--experiment``): the trained model of the experiment, each variant
run on the experiment's validation set with the experiment's representer and measurer (as eval.py):
precision / recall / F per variant, the F change from the plain forward in points, the model-only speed-up
on those images, and end-to-end images/s of the Detector on the raw validation images, sequential and with
``pipeline=True`` (post-processing overlapped with the next forward pass). int8 is calibrated on synthetic
images of another seed, never on the validation images.

    python -m benchmarks.bench_inference                               # every model, both sizes (~15 min, 2 cores)
    python -m benchmarks.bench_inference --models resnet18 --sizes 736x1280 --variants plain,optimized,onnx
    python -m benchmarks.bench_inference --checkpoint workspace/quickstart/model/final \
        --experiment experiments/synthetic/quickstart.yaml --variants plain,optimized,onnx,bf16,int8,int8dyn
    python -m benchmarks.bench_inference --device cuda --variants plain,optimized,fp16,bf16 --batch 8 --repeats 20
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

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from assets.ops.dcn import DeformConv, ModulatedDeformConv
from concern.cpu import cpu_has_bf16
from concern.errors import UserError
from inference.detector import Detector, torch_forward
from inference.onnx_export import export_onnx
from inference.onnx_runtime import onnx_forward
from inference.optimized import optimize_for_inference, optimized_forward, optimized_tensor_forward
from inference.quantize import calibration_inputs, quantize_onnx
from structure.model import SegDetectorModel
from structure.representers import SegDetectorRepresenter

CHANNELS = {
    'resnet18': [64, 128, 256, 512],
    'deformable_resnet18': [64, 128, 256, 512],
    'deformable_resnet50': [256, 512, 1024, 2048],
    'mobilenet_v3_large': [24, 40, 112, 960],
}
VARIANTS = (
    'plain',
    'optimized',
    'compiled',
    'onnx',
    'bf16',
    'compiled-bf16',
    'fp16',
    'int8',
    'int8qop',
    'int8all',
    'int8dyn',
)
COMPILED = ('compiled', 'compiled-bf16')  # their first call compiles (timed and printed apart)
# the static int8 variants: quantize_onnx's settings for each
STATIC_INT8 = {
    'int8': dict(quant_format='qdq', calibrate_method='minmax'),
    'int8qop': dict(quant_format='qoperator', calibrate_method='percentile'),
    'int8all': dict(quant_format='qoperator', calibrate_method='percentile', op_types='all'),
}
CPU_ONLY = ('int8', 'int8qop', 'int8all', 'int8dyn')


def build(backbone):
    torch.manual_seed(0)
    model = SegDetectorModel(
        dict(
            backbone=backbone,
            backbone_args=dict(pretrained=False),
            decoder='SegDetector',
            decoder_args=dict(adaptive=True, in_channels=CHANNELS[backbone], k=50),
        )
    )
    return model.eval()


def count_gflops(model, height, width):
    """GFLOPs (2 x multiply-adds) of one forward at (height, width)."""
    from torch.utils.flop_counter import FlopCounterMode

    extra = []

    def hook(module, inputs, output):
        out_channels, in_channels, kh, kw = module.weight.shape
        extra.append(2 * out_channels * in_channels * kh * kw * output.shape[-2] * output.shape[-1])

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (DeformConv, ModulatedDeformConv))
    ]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, height, width, device=next(model.parameters()).device), training=False)
    for handle in handles:
        handle.remove()
    return (counter.get_total_flops() + sum(extra)) / 1e9


def synthetic_image(height, width):
    from data.synth import SyntheticTextDataset

    sample = SyntheticTextDataset(num_samples=1, seed=7, image_size=(height, width), is_training=False)[0]
    return sample['image']


def make_forwards(model, variants, workdir, name, calibration, threads, device, deform_conv='auto'):
    """({variant: forward function (N, 3, H, W) float32 numpy -> (N, 1, H, W) maps} for ``variants``, each
    running on ``device`` (the model is moved there), {variant: the same over tensors on ``device``} for the
    PyTorch variants); ``calibration``: a list of preprocessed (1, 3, H, W) inputs for static int8."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    provider = 'CUDAExecutionProvider' if device.type == 'cuda' else 'CPUExecutionProvider'

    def session(path):
        return onnx_forward(onnxruntime.InferenceSession(path, options, providers=[provider]))

    model = model.to(device)
    forwards = {'plain': torch_forward(model, device)}

    def plain_tensor_forward(images):
        with torch.inference_mode():
            return model(images, training=False)

    tensor_forwards = {'plain': plain_tensor_forward}
    dtypes = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
    # (variant, precision, compiled): compiled-bf16 as inference.paths builds demo.py --precision bf16 --compile
    optimized_variants = (
        ('optimized', 'fp32', False),
        ('bf16', 'bf16', False),
        ('fp16', 'fp16', False),
        ('compiled-bf16', 'bf16', True),
    )
    for variant, precision, compiled in optimized_variants:
        if variant not in variants or (variant == 'fp16' and device.type != 'cuda'):
            continue
        fast = optimize_for_inference(  # a compiled model compiles at its first call (timed below)
            model, deform_conv=deform_conv, weight_dtype=dtypes[precision], compile=compiled, dynamic=None
        )
        forwards[variant] = optimized_forward(fast, device, precision=precision)
        tensor_forwards[variant] = optimized_tensor_forward(fast, device, precision=precision)
    if 'compiled' in variants:
        compiled = optimize_for_inference(model, compile=True)  # fp32, dynamic shapes
        forwards['compiled'] = optimized_forward(compiled, device)
        tensor_forwards['compiled'] = optimized_tensor_forward(compiled, device)
    if {'onnx', 'int8dyn', *STATIC_INT8} & set(variants):
        onnx_path = export_onnx(model, os.path.join(workdir, f'{name}.onnx'), example_size=(128, 128))
        forwards['onnx'] = session(onnx_path)
        for variant, settings in STATIC_INT8.items():
            if variant in variants:
                path = os.path.join(workdir, f'{name}.{variant}.onnx')
                forwards[variant] = session(
                    quantize_onnx(onnx_path, path, mode='static', calibration_images=calibration, **settings)
                )
        if 'int8dyn' in variants:
            forwards['int8dyn'] = session(
                quantize_onnx(onnx_path, os.path.join(workdir, f'{name}.int8dyn.onnx'), mode='dynamic')
            )
    return forwards, tensor_forwards


def model_timer(forwards, tensor_forwards, inputs, device):
    """{variant: function running the model once on ``inputs``}: numpy in and out on CPU; on a GPU, for the
    PyTorch variants, a tensor already on the GPU and a synchronisation at the end (no host copies)."""
    if device.type != 'cuda':
        return {variant: (lambda f=forward: f(inputs)) for variant, forward in forwards.items()}
    on_device = torch.from_numpy(inputs).to(device)

    def timed(forward):
        forward(on_device)
        torch.cuda.synchronize(device)

    return {
        variant: (lambda f=forward: timed(f)) if variant in tensor_forwards else (lambda f=forward: f(inputs))
        for variant, forward in {**forwards, **tensor_forwards}.items()
    }


def accuracy(args, variants, workdir):
    """Accuracy mode: P / R / F of every variant of a trained model on the experiment's validation set."""
    import copy

    from concern.runtime import build_model_with_weights, load_experiment_for_inference
    from eval import evaluation_section

    config = load_experiment_for_inference(args.experiment, args.opt)
    structure = config.build('Experiment.structure')
    model = build_model_with_weights(structure, args.checkpoint, torch.device('cpu'))
    device = torch.device(args.device)
    representer, measurer = structure.representer, structure.measurer
    if args.box_thresh is not None:
        representer.box_thresh = args.box_thresh
    name, loader = next(iter(config.build(evaluation_section(config)).data_loaders.items()))
    batches = list(loader)
    raw_dataset = copy.copy(loader.dataset)
    raw_dataset.processes = []  # the same images before resizing / normalisation, for the Detector
    raw_images = [raw_dataset[index]['image'] for index in range(len(raw_dataset))]
    short_side = min(raw_images[0].shape[:2])
    if args.calibration_images:
        calibration = calibration_inputs(args.calibration_images, 8, short_side, representer)
    elif hasattr(raw_dataset, 'seed'):  # a generated validation set: the generator's images of another seed
        calibration_source = copy.copy(raw_dataset)
        calibration_source.seed += 7919
        calibrator = Detector(None, representer, short_side)
        calibration = [calibrator.preprocess(calibration_source[index]['image'])[None] for index in range(8)]
    elif any(variant.startswith('int8') for variant in variants):
        raise UserError(
            f'{args.experiment}: the validation set {name!r} is not generated, so the int8 variants need '
            f'--calibration_images FOLDER (typical images that are not in the validation set).'
        )
    else:
        calibration = []
    forwards, tensor_forwards = make_forwards(
        model, variants, workdir, 'trained', calibration, args.threads, device, args.deform_conv
    )
    print(
        f'{args.experiment}, {args.checkpoint}: validation set {name!r}, {len(raw_images)} images '
        f'{raw_images[0].shape[1]}x{raw_images[0].shape[0]}, batch {loader.batch_size}, '
        f'box_thresh {representer.box_thresh}, thresh {representer.thresh}; speed: median of {args.repeats} '
        f'interleaved runs over the first {args.timing_images} images; e2e = Detector.detect_stream on the raw '
        f'images, sequential and pipelined'
    )
    print(
        f'{"variant":13s} {"precision":>9s} {"recall":>7s} {"F":>7s} {"dF (pt)":>8s} {"img/s":>7s} {"speed-up":>8s} '
        f'{"vs onnx":>7s} {"max|dp|":>8s} {"same boxes":>10s} {"e2e img/s":>9s} {"pipelined":>9s}'
    )
    order = [v for v in VARIANTS if v in variants]
    maps, outputs, metrics, boxes = {}, {}, {}, {}
    for variant in order:  # accuracy: every validation image once
        start = time.perf_counter()
        maps[variant] = [forwards[variant](batch['image'].numpy()) for batch in batches]
        if variant in COMPILED:
            print(
                f'{variant} variant: first pass over the validation set, torch.compile included, '
                f'{time.perf_counter() - start:.1f} s',
                flush=True,
            )
        outputs[variant] = [
            representer.represent(batch, probability) for batch, probability in zip(batches, maps[variant])
        ]
        metrics[variant] = measurer.gather_measure(
            [
                measurer.validate_measure(batch, output, box_thresh=representer.box_thresh)
                for batch, output in zip(batches, outputs[variant])
            ]
        )
        boxes[variant] = [box for output in outputs[variant] for image_boxes in output[0] for box in image_boxes]
    # speed: the first --timing_images images, variants interleaved within each repeat (a change of load hits all)
    timing_batches = batches[: max(1, args.timing_images // loader.batch_size)]
    timing_images = raw_images[: len(timing_batches) * loader.batch_size]
    batch_timers = [model_timer(forwards, tensor_forwards, batch['image'].numpy(), device) for batch in timing_batches]
    detectors = {
        (variant, pipeline): Detector(
            forwards[variant], representer, short_side, batch_size=loader.batch_size, pipeline=pipeline
        )
        for variant in order
        for pipeline in (False, True)
    }
    runs = {'model': {}, False: {}, True: {}}
    for repeat in range(args.repeats + 1):  # the first round is a warm-up
        for variant in order:
            jobs = {
                'model': lambda: [timers[variant]() for timers in batch_timers],
                False: lambda: list(detectors[variant, False].detect_stream(timing_images)),
                True: lambda: list(detectors[variant, True].detect_stream(timing_images)),
            }
            for kind, job in jobs.items():
                start = time.perf_counter()
                job()
                if repeat:
                    runs[kind].setdefault(variant, []).append(time.perf_counter() - start)
    rate = {
        kind: {v: len(timing_images) / float(np.median(times)) for v, times in by_variant.items()}
        for kind, by_variant in runs.items()
    }
    for variant in order:
        same = len(boxes[variant]) == len(boxes['plain']) and all(
            np.array_equal(a, b) for a, b in zip(boxes[variant], boxes['plain'])
        )
        difference = max(float(np.abs(a - b).max()) for a, b in zip(maps[variant], maps['plain']))
        print(
            f'{variant:13s} {metrics[variant]["precision"]:9.4f} {metrics[variant]["recall"]:7.4f} '
            f'{metrics[variant]["fmeasure"]:7.4f} '
            f'{100 * (metrics[variant]["fmeasure"] - metrics["plain"]["fmeasure"]):+8.2f} '
            f'{rate["model"][variant]:7.2f} {rate["model"][variant] / rate["model"]["plain"]:7.2f}x '
            f'{rate["model"][variant] / rate["model"].get("onnx", float("nan")):6.2f}x '
            f'{difference:8.1e} {("yes" if same else "no") + f" ({len(boxes[variant])})":>10s} '
            f'{rate[False][variant]:9.2f} {rate[True][variant]:9.2f}',
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(CHANNELS), choices=list(CHANNELS))
    parser.add_argument('--sizes', nargs='+', default=['736x1280', '800x800'], help='HxW, multiples of 32')
    parser.add_argument('--variants', default='plain,optimized,onnx,int8', help=f'comma list of {VARIANTS}')
    parser.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='timed runs per variant (median; model-only, and in accuracy mode end-to-end too)',
    )
    parser.add_argument('--e2e_repeats', type=int, default=1, help='timed end-to-end runs per variant (median)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(), help='CPU threads (torch and ORT)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (the PyTorch variants and onnx run there)")
    parser.add_argument('--batch', type=int, default=1, help='speed mode: images per model-only forward call')
    parser.add_argument(
        '--deform_conv',
        default='auto',
        choices=['auto', 'gather', 'sampled', 'kernel'],
        help='deformable conv form of the optimized / bf16 / fp16 variants (inference.deform_conv.Float32DeformConv)',
    )
    parser.add_argument('--cudnn_benchmark', action='store_true', help='GPU: cuDNN autotuning for every variant')
    parser.add_argument('--checkpoint', help='accuracy mode: a trained checkpoint (with --experiment)')
    parser.add_argument('--experiment', help='accuracy mode: its experiment YAML (validation set, representer)')
    parser.add_argument(
        '--timing_images',
        type=int,
        default=16,
        help='accuracy mode: validation images timed per repeat (all of them are evaluated)',
    )
    parser.add_argument('--box_thresh', type=float, help="accuracy mode: override the representer's box_thresh")
    parser.add_argument(
        '--calibration_images',
        help='accuracy mode: a folder of images to calibrate the int8 variants on, not the validation images '
        '(default for a generated validation set: the generator with another seed)',
    )
    parser.add_argument(
        '--opt', action='append', default=[], metavar='PATH=VALUE', help='accuracy mode: experiment override'
    )
    args = parser.parse_args(argv)
    if (args.checkpoint is None) != (args.experiment is None):
        parser.error('--checkpoint and --experiment go together (accuracy mode).')
    variants = args.variants.split(',')
    unknown = set(variants) - set(VARIANTS)
    if unknown or 'plain' not in variants:
        parser.error(f"--variants: unknown {sorted(unknown)} (known: {VARIANTS}); 'plain' is the baseline and needed.")
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: PyTorch sees no CUDA GPU here; use --device cpu.')
    if device.type == 'cuda' and set(CPU_ONLY) & set(variants):
        parser.error(
            f'--variants: {sorted(set(CPU_ONLY) & set(variants))} run on CPU only (ONNX Runtime int8); '
            f'leave them out with --device cuda.'
        )
    if device.type != 'cuda' and 'fp16' in variants:
        parser.error('--variants: fp16 needs --device cuda; use bf16 on CPU.')
    warnings.filterwarnings('ignore')
    logging.getLogger().setLevel(logging.ERROR)  # the ONNX Runtime quantiser's advice on every layer
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    import onnxruntime

    if (
        device.type == 'cuda'
        and 'onnx' in variants
        and 'CUDAExecutionProvider' not in onnxruntime.get_available_providers()
    ):
        parser.error(
            f'--variants onnx with --device cuda needs onnxruntime-gpu; this onnxruntime '
            f'{onnxruntime.__version__} has {onnxruntime.get_available_providers()}.'
        )
    where = (
        f'GPU {torch.cuda.get_device_name(device)} (cuDNN TF32 {torch.backends.cudnn.allow_tf32}, '
        f'benchmark {args.cudnn_benchmark}), '
        if device.type == 'cuda'
        else ''
    )
    print(
        f'{where}torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads, '
        f'CPU bf16 support: {"yes" if cpu_has_bf16() else "no"}, '
        f'model-only batch {args.batch}'
    )
    workdir = tempfile.mkdtemp(prefix='bench_inference_')
    if args.checkpoint is not None:
        accuracy(args, variants, workdir)
        return
    print(
        f'{"model":22s} {"size":9s} {"GFLOPs":>7s} {"variant":13s} {"ms/img":>7s} {"GFLOP/s":>8s} {"speed-up":>8s} '
        f'{"vs onnx":>7s} {"max|dp|":>8s} {"e2e img/s":>9s} {"detections":>14s}'
    )
    for backbone in args.models:
        model = build(backbone)
        calibration = [Detector(None, SegDetectorRepresenter(), 320).preprocess(synthetic_image(320, 320))[None]]
        forwards, tensor_forwards = make_forwards(
            model, variants, workdir, backbone, calibration, args.threads, device, args.deform_conv
        )
        for size in args.sizes:
            height, width = (int(v) for v in size.lower().split('x'))
            gflops = count_gflops(model, height, width)
            image = synthetic_image(height, width)
            representer = SegDetectorRepresenter(max_candidates=1000, box_thresh=0.6)
            inputs = np.repeat(Detector(None, representer, min(height, width)).preprocess(image)[None], args.batch, 0)
            order = [v for v in VARIANTS if v in variants]
            # variants interleaved within each repeat, so that a change of machine load hits them all alike
            model_times, e2e_times, maps, detections = {v: [] for v in order}, {v: [] for v in order}, {}, {}
            detectors = {v: Detector(forwards[v], representer, min(height, width)) for v in order}
            timers = model_timer(forwards, tensor_forwards, inputs, device)
            for variant in order:
                start = time.perf_counter()
                maps[variant] = forwards[variant](inputs)  # warm-up (compiled: compiles), and the maps compared
                if variant in COMPILED:
                    print(
                        f'{backbone} {size}: {variant} variant, first call (torch.compile) '
                        f'{time.perf_counter() - start:.1f} s',
                        flush=True,
                    )
                timers[variant]()
            for _ in range(args.repeats):
                for variant in order:
                    start = time.perf_counter()
                    timers[variant]()
                    model_times[variant].append(time.perf_counter() - start)
            for _ in range(args.e2e_repeats):
                for variant in order:
                    start = time.perf_counter()
                    detections[variant] = detectors[variant].detect([image])[0]
                    e2e_times[variant].append(time.perf_counter() - start)
            plain_time = float(np.median(model_times['plain']))
            onnx_time = float(np.median(model_times['onnx'])) if 'onnx' in order else float('nan')
            for variant in order:
                seconds, e2e = float(np.median(model_times[variant])), float(np.median(e2e_times[variant]))
                boxes, reference = detections[variant][0], detections['plain'][0]
                same = len(boxes) == len(reference) and all(np.array_equal(a, b) for a, b in zip(boxes, reference))
                print(
                    f'{backbone:22s} {size:9s} {gflops:7.1f} {variant:13s} {1e3 * seconds / args.batch:7.1f} '
                    f'{args.batch * gflops / seconds:8.1f} {plain_time / seconds:7.2f}x {onnx_time / seconds:6.2f}x '
                    f'{np.abs(maps[variant] - maps["plain"]).max():8.1e} {1 / e2e:9.2f} '
                    f'{("same" if same else "DIFFERENT") + f" ({len(boxes)})":>14s}',
                    flush=True,
                )


if __name__ == '__main__':
    from concern.cli import run_main

    raise SystemExit(run_main(main))
