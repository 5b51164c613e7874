"""Time the deformable conv op (torchvision kernels) at the sizes of deformable ResNet-50.

Prints milliseconds per call for the modulated deformable 3x3 conv of stages 2-4 at a 640x640
input (forward, and forward+backward), next to the same conv computed by ``sampled_deform_conv`` (grid_sample +
one matrix product, what the ONNX export and ``inference.optimized`` on CPU use) and a plain 3x3 conv of the
same shape, then whole
backbone forwards (resnet50 vs deformable_resnet50). Usage:
    python -m benchmarks.bench_dcn [--device cpu|cuda] [--batch 1] [--size 640] [--repeat 5]
"""

import argparse
import os
import sys
import time

import torch

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import backbones
from assets.ops.dcn import ModulatedDeformConv
from inference.deform_conv import sampled_deform_conv


def timed(function, device, repeat):
    function()  # warm-up
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--size', type=int, default=640)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu, {torch.get_num_threads()} threads'
    print(f'device: {name}; torch {torch.__version__}; batch {args.batch}; input {args.size}x{args.size}')
    print(
        f'{"layer":<10}{"shape (N,C,H,W)":<22}{"dcn fwd ms":>12}{"sampled fwd ms":>16}{"conv fwd ms":>13}'
        f'{"dcn f+b ms":>12}'
    )
    for stage, channels, stride in ((2, 128, 8), (3, 256, 16), (4, 512, 32)):
        size = args.size // stride
        conv = ModulatedDeformConv(channels, channels, 3, padding=1, bias=False).to(device)
        plain = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
        x = torch.randn(args.batch, channels, size, size, device=device, requires_grad=True)
        offset = (torch.randn(args.batch, 18, size, size, device=device) * 2).requires_grad_()
        mask = torch.rand(args.batch, 9, size, size, device=device).requires_grad_()

        def forward():
            with torch.no_grad():
                conv(x, offset, mask)

        def sampled_forward():
            with torch.no_grad():
                sampled_deform_conv(x, offset, conv.weight, None, mask, conv.stride, conv.padding, conv.dilation)

        def plain_forward():
            with torch.no_grad():
                plain(x)

        def forward_backward():
            conv(x, offset, mask).sum().backward()

        print(
            f'layer{stage:<5}{str((args.batch, channels, size, size)):<22}'
            f'{timed(forward, device, args.repeat):>12.2f}'
            f'{timed(sampled_forward, device, args.repeat):>16.2f}'
            f'{timed(plain_forward, device, args.repeat):>13.2f}'
            f'{timed(forward_backward, device, args.repeat):>12.2f}'
        )

    image = torch.randn(args.batch, 3, args.size, args.size, device=device)
    for backbone in ('resnet50', 'deformable_resnet50'):
        model = getattr(backbones, backbone)(pretrained=False).to(device).eval()

        def run():
            with torch.no_grad():
                model(image)

        print(f'{backbone} forward: {timed(run, device, args.repeat):.1f} ms')


if __name__ == '__main__':
    main()
