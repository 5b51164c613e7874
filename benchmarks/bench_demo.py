"""demo.py as a user runs it, every path, on a folder of real-size photos: seconds per image, the ratio to --plain,
whether the detections equal --plain's, and the achieved GFLOP/s against the CPU's peak.

Timed in-process, on demo.py's own code: each path's detector is built once with ``demo.build_detector`` and run
once on one image of each input size among the timed ones (start-up: model, export, cache, torch.compile, first-call
allocations; not timed, printed), then every round times ``demo.detect_images`` over the images (reading,
resizing, the forward passes, post-processing and writing the result files, with demo.py's default pipeline),
the paths interleaved (round 1: A B C ..., round 2: A B C ...) so that a change in the machine's load hits every
path alike. The figure is the median round's s/image.

Paths (CPU): plain (``--plain``), optimize (``--optimize``), optimize-bf16 (``--optimize --precision bf16``),
optimize-bf16-compile (the same with ``--compile``: torch.compile; the start-up holds the compile), onnx-fp32
(``--onnx`` on convert_to_onnx.py's export), onnx-int8 (``--onnx`` on its ``--int8`` copy, static, calibrated on
``--calibration_images``, by default generated images that are not the measured ones), onnx-int8all (the same with
``--int8_ops all``: the adds, ReLU, concatenation, upsampling and pooling in int8 too), default (no flag: the path
demo.py picks).
``--device cuda``: plain, optimize, optimize-fp16, optimize-bf16, optimize-fp16-compile and default, at batch 1 and
``--batch_size`` (default 8) on images of one size, short side 800 (Total-Text's test size) unless ``--short_side``
is given.

GFLOP/s = FLOPs of one forward at each image's input size (torch.utils.flop_counter + the deformable convolutions'
multiply-adds, ``benchmarks.bench_inference.count_gflops``) / end-to-end seconds per image: a lower bound of the
model's own rate. Peak = threads x clock (GHz, /proc/cpuinfo 'cpu MHz') x FLOP per cycle per core: fp32 with
AVX-512 2 FMA units x 16 lanes x 2 = 64 (AVX2: 32); bf16 with AMX 1024, with AVX512-BF16 128; int8 (ops) with
AMX 2048, with AVX512-VNNI 256. The clock a VM reports is nominal (turbo may exceed it).

Without ``--checkpoint`` the model has random weights: usually no detections, so neither the comparison with --plain
nor the post-processing load is typical (the 'detections' column says how many there were); give a trained
checkpoint for the figures. Without a folder, ``--images`` photo-like images of text are generated
with data/synth/'s 'photo' preset, half 1280x720 and half 4:3 (1280x960).

    python -m benchmarks.bench_demo /path/to/icdar2015/test_images --images 24 --rounds 3 --threads 2 --polygon
    python -m benchmarks.bench_demo --checkpoint model.pth --experiment experiments/icdar2015/ic15_resnet18_cpu.yaml
    python -m benchmarks.bench_demo --device cuda --images 32
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

if __package__ in (None, ''):  # run by its path (python benchmarks/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CPU_PATHS = {
    'plain': ['--plain'],
    'optimize': ['--optimize'],
    'optimize-bf16': ['--optimize', '--precision', 'bf16'],
    'optimize-bf16-compile': ['--optimize', '--precision', 'bf16', '--compile'],
    'onnx-fp32': ['--onnx', '{onnx}'],
    'onnx-int8': ['--onnx', '{int8}'],
    'onnx-int8all': ['--onnx', '{int8all}'],
    'default': [],
}
CUDA_PATHS = {
    'plain': ['--plain'],
    'optimize': ['--optimize'],
    'optimize-fp16': ['--optimize', '--precision', 'fp16'],
    'optimize-bf16': ['--optimize', '--precision', 'bf16'],
    'optimize-fp16-compile': ['--optimize', '--precision', 'fp16', '--compile'],
    'default': [],
}
DEFAULT_EXPERIMENT = 'experiments/seg_detector/ic15_resnet18_deform_thre.yaml'  # deformable ResNet-18


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Time demo.py on every path.')
    parser.add_argument('folder', nargs='?', help='a folder of photos (default: generated photo-like images)')
    parser.add_argument('--experiment', default=DEFAULT_EXPERIMENT, help='experiment YAML file')
    parser.add_argument('--checkpoint', help='checkpoint (default: random weights, saved to a temporary file)')
    parser.add_argument('--images', type=int, default=24, help='images timed per path and round')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds (the median is reported)')
    parser.add_argument(
        '--threads',
        type=int,
        default=int(os.environ.get('OMP_NUM_THREADS') or os.cpu_count() or 1),
        help='torch / ONNX Runtime threads (default: $OMP_NUM_THREADS, else every core)',
    )
    parser.add_argument('--short_side', type=int, help='demo.py --image_short_side (default 736; 800 on CUDA)')
    parser.add_argument('--polygon', action=argparse.BooleanOptionalAction, default=True, help='polygon mode')
    parser.add_argument('--paths', help='comma-separated subset of the paths (default: all)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--batch_size', type=int, default=8, help='CUDA: the batched run (besides batch 1)')
    parser.add_argument('--calibration_count', type=int, default=8, help='onnx-int8: calibration images')
    parser.add_argument(
        '--calibration_images',
        metavar='FOLDER',
        help='onnx-int8 / onnx-int8all: calibrate on these images (not the timed ones; default: generated 1280x720)',
    )
    parser.add_argument('--keep', metavar='DIR', help='work in DIR and keep it (images, exports, results)')
    return parser.parse_args(argv)


def cpu_peak_gflops(threads: int, text: str | None = None) -> tuple[dict, str]:
    """({'fp32', 'bf16', 'int8'}: GFLOP/s (int8: GOP/s), the formula) from the flags and clock of ``text``
    (default: /proc/cpuinfo)."""
    if text is None:
        try:
            with open('/proc/cpuinfo', encoding='utf-8') as handle:
                text = handle.read()
        except OSError:
            return {}, 'peak unknown (no /proc/cpuinfo)'
    flags = set()
    mhz = []
    for line in text.splitlines():
        if line.startswith('flags'):
            flags |= set(line.split(':', 1)[1].split())
        elif line.startswith('cpu MHz'):
            mhz.append(float(line.split(':', 1)[1]))
    ghz = max(mhz) / 1000 if mhz else float('nan')
    per_cycle = {'fp32': 64 if 'avx512f' in flags else 32 if 'fma' in flags else 8}
    per_cycle['bf16'] = 1024 if 'amx_bf16' in flags else 128 if 'avx512_bf16' in flags else per_cycle['fp32']
    per_cycle['int8'] = 2048 if 'amx_int8' in flags else 256 if 'avx512_vnni' in flags else 2 * per_cycle['fp32']
    peaks = {kind: threads * ghz * value for kind, value in per_cycle.items()}
    formula = (
        f'peak = {threads} cores x {ghz:.2f} GHz x FLOP/cycle/core (fp32 {per_cycle["fp32"]}, bf16 '
        f'{per_cycle["bf16"]}, int8 {per_cycle["int8"]} ops) = fp32 {peaks["fp32"]:.0f}, bf16 {peaks["bf16"]:.0f}, '
        f'int8 {peaks["int8"]:.0f} GFLOP/s'
    )
    return peaks, formula


def generate_images(folder: str, count: int, seed: int, sizes=((720, 1280), (960, 1280))) -> str:
    """``count`` photo-like JPEGs of text of ``sizes`` (H, W) in turn (data/synth/ 'photo' preset)."""
    import cv2

    from data.synth import SyntheticTextDataset

    os.makedirs(folder, exist_ok=True)
    datasets = [
        SyntheticTextDataset(num_samples=count, seed=seed + i, image_size=size, difficulty='photo', is_training=False)
        for i, size in enumerate(sizes)
    ]
    for index in range(count):
        image = datasets[index % len(sizes)].generate(index)['image']
        cv2.imwrite(os.path.join(folder, f'photo_{index:03d}.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


def same_detections(got: dict, expected: dict) -> str:
    """'yes' when every image has the same number of detections, points within 1 px and scores within 1e-4; else
    'no' and the first difference."""
    import numpy as np

    for name, detections in expected.items():
        other = got.get(name, [])
        if len(other) != len(detections):
            return f'no ({os.path.basename(name)}: {len(other)} vs {len(detections)} detections)'
        for a, b in zip(other, detections):
            if len(a['points']) != len(b['points']):  # polygons: another outline
                return f'no ({os.path.basename(name)}: {len(a["points"])} vs {len(b["points"])} polygon points)'
            points = np.abs(np.array(a['points']) - np.array(b['points'])).max()
            if points > 1 or abs(a['score'] - b['score']) >= 1e-4:
                score = abs(a['score'] - b['score'])
                return f'no ({os.path.basename(name)}: points {points:.0f} px, score {score:.1e})'
    return 'yes'


def run_once(demo_args, images, detector, name: str) -> dict:
    """demo.py's per-image work over ``images`` into a fresh result folder ``<result_dir>/<name>``; {image:
    detections}."""
    import demo
    from concern.result_log import ResultLog, detections_by_image

    folder = os.path.join(demo_args.result_dir, name)
    with ResultLog(folder, {'benchmark': name}) as log:
        demo.detect_images(demo_args, images, detector, log)
    return detections_by_image(folder)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)  # before torch is imported
    import torch

    torch.set_num_threads(args.threads)
    import demo
    from benchmarks.bench_inference import count_gflops
    from concern.runtime import load_experiment_for_inference
    from data.image_io import find_images, read_image
    from inference.detector import inference_size

    cuda = args.device.startswith('cuda')
    short_side = args.short_side or (800 if cuda else 736)
    work = args.keep or tempfile.mkdtemp(prefix='bench_demo_')
    os.makedirs(work, exist_ok=True)
    try:
        folder = args.folder or generate_images(os.path.join(work, 'images'), args.images, seed=11)
        images = find_images(folder)[: args.images]
        if len(images) < args.images:
            print(f'note: {folder} holds {len(images)} images; timing those', file=sys.stderr)
        checkpoint = args.checkpoint
        config = load_experiment_for_inference(args.experiment)
        if checkpoint is None:  # random weights, the same in every run (the paths' comparison is then repeatable)
            torch.manual_seed(0)
        model = config.build('Experiment.structure').builder.build().eval()
        if checkpoint is None:
            checkpoint = os.path.join(work, 'random.pth')
            torch.save(model.state_dict(), checkpoint)
        else:
            from concern.checkpoint_io import load_model_weights

            load_model_weights(model, checkpoint)
        sizes = [inference_size(*read_image(path).shape[:2], short_side) for path in images]
        flops = {size: count_gflops(model, *size) for size in set(sizes)}
        gflop_per_image = sum(flops[size] for size in sizes) / len(sizes)
        del model
        table = CUDA_PATHS if cuda else CPU_PATHS
        names = args.paths.split(',') if args.paths else list(table)
        unknown = sorted(set(names) - set(table))
        if unknown:
            raise SystemExit(f'--paths: unknown {unknown}; known: {", ".join(table)}')

        model_flags = [args.experiment, '--resume', checkpoint, '--device', args.device]
        model_flags += ['--cache_dir', os.path.join(work, 'cache')]  # the default path's export, not in ~/.cache
        shared = ['--image_path', folder, '--image_short_side', str(short_side)]
        shared += ['--polygon'] if args.polygon else []
        files = {}
        if any(name.startswith('onnx') for name in names):
            import convert_to_onnx

            calibration = args.calibration_images
            if calibration is None and any(name.startswith('onnx-int8') for name in names):
                calibration = os.path.join(work, 'calibration')
                generate_images(calibration, args.calibration_count, seed=99, sizes=[(720, 1280)])
            # the float export with the 'conv' int8 copy, and for onnx-int8all a second export with the 'all' copy
            # (a float file's metadata names its int8 copy)
            exports = []
            if {'onnx-fp32', 'onnx-int8'} & set(names):
                files['onnx'] = os.path.join(work, 'model.onnx')
                exports.append((files['onnx'], 'int8', 'conv'))
            if 'onnx-int8all' in names:
                exports.append((os.path.join(work, 'model_all.onnx'), 'int8all', 'all'))
            for float_path, int8_key, ops in exports:
                convert = [args.experiment, '--resume', checkpoint, '--output', float_path, '--no_check']
                if f'onnx-{int8_key}' in names:
                    files[int8_key] = os.path.splitext(float_path)[0] + '.int8.onnx'
                    convert += ['--int8', files[int8_key], '--int8_ops', ops, '--calibration_images', calibration]
                    convert += ['--calibration_count', str(args.calibration_count)]
                    convert += ['--image_short_side', str(short_side)]
                convert_to_onnx.main(convert)

        runs = []  # (label, demo.py arguments)
        for name in names:
            flags = [flag.format(**files) for flag in table[name]]
            source = flags if flags[:1] == ['--onnx'] else model_flags + flags  # --onnx takes no experiment
            for batch in [1, args.batch_size] if cuda else [1]:
                label = name if batch == 1 else f'{name} batch {batch}'
                result_dir = os.path.join(work, 'results', label.replace(' ', '_'))
                runs.append((label, source + shared + ['--batch_size', str(batch), '--result_dir', result_dir]))

        # one image of each input size: the start-up's warm-up run (torch.compile compiles there)
        warm_up = list({size: path for size, path in zip(sizes, images)}.values())
        detectors = {}
        for label, arguments in runs:
            demo_args = demo.parse_args(arguments)
            demo_args.pipeline = len(images) > 1  # demo.py's default
            started = time.perf_counter()
            detector = demo.build_detector(demo_args)
            run_once(demo_args, warm_up, detector, 'warm_up')
            detectors[label] = (demo_args, detector)
            print(f'{label}: start-up {time.perf_counter() - started:.1f} s (not timed below)', flush=True)

        seconds = {label: [] for label, _ in runs}
        results = {}
        for round_index in range(args.rounds):
            for label, _ in runs:
                demo_args, detector = detectors[label]
                if cuda:
                    torch.cuda.synchronize()
                started = time.perf_counter()
                found = run_once(demo_args, images, detector, f'round{round_index}')
                if cuda:
                    torch.cuda.synchronize()
                seconds[label].append((time.perf_counter() - started) / len(images))
                results[label] = found
            print(f'round {round_index + 1}/{args.rounds} done', flush=True)

        peaks, formula = cpu_peak_gflops(min(args.threads, os.cpu_count() or args.threads))
        where = torch.cuda.get_device_name() if cuda else f'CPU, {args.threads} threads'
        print()
        print(
            f'{len(images)} images from {folder}, short side {short_side}, '
            f'{"polygons" if args.polygon else "boxes"}, {where}; {args.rounds} interleaved rounds, median; '
            f'model {gflop_per_image:.1f} GFLOP per image; in-process demo.detect_images (start-up excluded)'
        )
        if not cuda:
            print(formula)
        plain = statistics.median(seconds['plain']) if 'plain' in seconds else None
        columns = ('s/image', 'images/s', 'vs plain', 'GFLOP/s', 'of peak')
        print(f'{"path":22s} ' + ' '.join(f'{column:>8s}' for column in columns) + '  detections  same as plain')
        for label, _ in runs:
            median = statistics.median(seconds[label])
            rate = gflop_per_image / median
            kind = 'int8' if 'int8' in label else 'bf16' if 'bf16' in label else 'fp32'
            peak = f'{100 * rate / peaks[kind]:7.1f}%' if peaks and kind in peaks and not cuda else f'{"-":>8s}'
            ratio = f'{plain / median:7.2f}x' if plain else f'{"-":>8s}'
            plain_label = 'plain' if ' batch ' not in label else f'plain batch {args.batch_size}'
            same = same_detections(results[label], results[plain_label]) if plain_label in results else '-'
            count = sum(len(found) for found in results[label].values())
            print(f'{label:22s} {median:8.3f} {1 / median:8.2f} {ratio} {rate:8.1f} {peak}  {count:10d}  {same}')
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
