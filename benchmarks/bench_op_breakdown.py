"""Where the model's time goes, per op group, in each inference path: the optimised PyTorch model (fp32, bf16;
'gather' / 'gatherbf16': with the embedding_bag deformable conv; torch.profiler) and ONNX Runtime (fp32, int8
and int8all: more ops in int8; its own profiler), on one input of a random-weight model.

Op groups: convolution (convs and the head's deconvolutions: oneDNN / MLAS kernels), deformable conv (sampling,
mask, matrix product of the (modulated) deformable convs; in ONNX the nodes of their GridSample + MatMul form),
elementwise (residual adds, ReLU, sigmoid, the rest's mul / add), concat / upsample / pooling, layout and dtype
conversions (copies, Quantize / Dequantize, Transpose, Cast) and other. Self times of the profiled ops, per
image, median of ``--repeats`` profiled runs; the profiler adds a little to PyTorch's many small ops.

    python -m benchmarks.bench_op_breakdown --size 736x1280 --threads 2 --paths optimized,bf16,onnx,int8
"""

from __future__ import annotations

import argparse
import collections
import json
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

from benchmarks.bench_inference import build, count_gflops, synthetic_image
from inference.deform_conv import Float32DeformConv
from inference.detector import Detector
from inference.onnx_export import export_onnx
from inference.optimized import optimize_for_inference, optimized_tensor_forward
from inference.quantize import quantize_onnx
from structure.representers import SegDetectorRepresenter

PATHS = ('plain', 'optimized', 'bf16', 'gather', 'gatherbf16', 'onnx', 'int8', 'int8all')
GROUPS = (
    'convolution',
    'deformable conv',
    'elementwise',
    'concat / upsample / pool',
    'layout / dtype conversion',
    'other',
)
_TORCH_GROUPS = {
    'convolution': ('conv',),
    'elementwise': ('add', 'clamp', 'relu', 'sigmoid', 'mul', 'div', 'sub', 'neg', 'exp', 'reciprocal'),
    'concat / upsample / pool': ('cat', 'upsample', 'max_pool', 'pool'),
    'layout / dtype conversion': ('copy', 'to_copy', 'contiguous', 'clone', 'permute'),
}
_ONNX_GROUPS = {
    'convolution': ('Conv', 'QLinearConv', 'ConvTranspose', 'ConvInteger', 'FusedConv', 'NhwcFusedConv'),
    'elementwise': ('Add', 'Relu', 'Sigmoid', 'Mul', 'Div', 'Sub', 'QLinearAdd', 'QLinearMul', 'QLinearSigmoid'),
    'concat / upsample / pool': ('Concat', 'QLinearConcat', 'Resize', 'Upsample', 'MaxPool', 'QLinearAveragePool'),
    'layout / dtype conversion': ('QuantizeLinear', 'DequantizeLinear', 'Transpose', 'Cast', 'Reshape'),
}


def _group(name: str, table: dict) -> str:
    for group, names in table.items():
        if any(part in name for part in names):
            return group
    return 'other'


def torch_breakdown(forward, inputs: torch.Tensor, repeats: int) -> dict:
    """{group: seconds} of one forward, median over ``repeats`` profiled runs; ops called inside a
    ``Float32DeformConv`` count as 'deformable conv'."""
    from torch.profiler import ProfilerActivity, profile

    runs = []
    for _ in range(repeats):
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            forward(inputs)
        totals = collections.Counter()
        for event in profiler.events():
            if event.name == 'deformable conv':
                continue
            parent, deformable = event.cpu_parent, False
            while parent is not None:
                deformable |= parent.name == 'deformable conv'
                parent = parent.cpu_parent
            name = event.name.replace('aten::', '')
            deformable |= 'deform' in name  # torchvision's kernel (the plain model)
            group = 'deformable conv' if deformable else _group(name, _TORCH_GROUPS)
            totals[group] += event.self_cpu_time_total / 1e6
        runs.append(totals)
    return {group: float(np.median([run[group] for run in runs])) for group in GROUPS}


def label_deformable_convs(model: torch.nn.Module) -> None:
    """Wrap each ``Float32DeformConv`` forward in a profiler range named 'deformable conv'."""
    for module in model.modules():
        if isinstance(module, Float32DeformConv):
            forward = module.forward

            def labelled(*args, _forward=forward, **kwargs):
                with torch.profiler.record_function('deformable conv'):
                    return _forward(*args, **kwargs)

            module.forward = labelled


def onnx_breakdown(path: str, inputs: np.ndarray, threads: int, repeats: int, workdir: str) -> dict:
    """{group: seconds} of one ONNX Runtime run, median over ``repeats`` profiled runs; the nodes of the
    deformable convs' GridSample form (under a '/conv2/' scope, not the offset conv) count as 'deformable conv'."""
    import onnxruntime

    runs = []
    for repeat in range(repeats):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(workdir, f'profile_{repeat}')
        session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        session.run(None, {'image': inputs})  # warm-up, profiled too: dropped below
        start = time.perf_counter()
        session.run(None, {'image': inputs})
        wall = time.perf_counter() - start
        with open(session.end_profiling()) as handle:
            events = [e for e in json.load(handle) if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time')]
        events = events[len(events) // 2 :]  # the second run
        totals = collections.Counter()
        for event in events:
            op, node = event['args']['op_name'], event['name']
            deformable = '/conv2/' in node and 'Conv' not in op or 'MatMul' in op
            totals['deformable conv' if deformable else _group(op, _ONNX_GROUPS)] += event['dur'] / 1e6
        totals['other'] += max(0.0, wall - sum(totals.values()))  # scheduling, allocation between nodes
        runs.append(totals)
    return {group: float(np.median([run[group] for run in runs])) for group in GROUPS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='deformable_resnet18')
    parser.add_argument('--size', default='736x1280', help='HxW, multiples of 32')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--paths', default='optimized,bf16,onnx,int8', help=f'comma list of {PATHS}')
    args = parser.parse_args(argv)
    paths = args.paths.split(',')
    if set(paths) - set(PATHS):
        parser.error(f'--paths: unknown {sorted(set(paths) - set(PATHS))} (known: {PATHS}).')
    warnings.filterwarnings('ignore')
    logging.getLogger().setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.lower().split('x'))
    model = build(args.model)
    gflops = count_gflops(model, height, width)
    inputs = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    workdir = tempfile.mkdtemp(prefix='bench_breakdown_')
    results = {}

    def optimized(path):  # as demo.py / eval.py --optimize / --precision bf16 build it
        bf16 = path.endswith('bf16')
        fast = optimize_for_inference(
            model,
            deform_conv='gather' if path.startswith('gather') else 'auto',
            weight_dtype=torch.bfloat16 if bf16 else None,
        )
        label_deformable_convs(fast)
        return optimized_tensor_forward(fast, 'cpu', precision='bf16' if bf16 else 'fp32')

    for path in paths:
        if path in ('plain', 'optimized', 'bf16', 'gather', 'gatherbf16'):
            if path == 'plain':

                def forward(x):
                    with torch.inference_mode():
                        return model(x, training=False)

            else:
                forward = optimized(path)
            forward(inputs)  # warm-up
            results[path] = torch_breakdown(forward, inputs, args.repeats)
            continue
        onnx_path = os.path.join(workdir, 'model.onnx')
        if not os.path.exists(onnx_path):
            export_onnx(model, onnx_path, example_size=(128, 128))
        if path != 'onnx':
            calibration = [Detector(None, SegDetectorRepresenter(), 320).preprocess(synthetic_image(320, 320))[None]]
            onnx_path = quantize_onnx(
                onnx_path,
                os.path.join(workdir, f'{path}.onnx'),
                mode='static',
                calibration_images=calibration,
                op_types='all' if path == 'int8all' else 'conv',
            )
        results[path] = onnx_breakdown(onnx_path, inputs.numpy(), args.threads, args.repeats, workdir)
    print(
        f'{args.model} {height}x{width}, {gflops:.1f} GFLOP per image, {args.threads} threads, torch '
        f'{torch.__version__}; ms per image (share) per op group, median of {args.repeats} profiled runs'
    )
    print(f'{"op group":28s}' + ''.join(f'{path:>16s}' for path in results))
    for group in GROUPS:
        cells = ''.join(f'{1e3 * t[group]:9.0f} ({100 * t[group] / sum(t.values()):3.0f}%)' for t in results.values())
        print(f'{group:28s}{cells}')
    totals = ''.join(f'{1e3 * sum(times.values()):9.0f}       ' for times in results.values())
    print(f'{"total":28s}{totals}')
    print(f'{"GFLOP/s":28s}' + ''.join(f'{gflops / sum(t.values()):9.0f}       ' for t in results.values()))


if __name__ == '__main__':
    main()
