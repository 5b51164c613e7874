"""demo.py at scale: images/s on 1 and 2 processes, memory over many images, tiled against shrunk detection.

    python -m benchmarks.bench_detect_at_scale throughput --images 2000          # 1 process vs torchrun 2 (CPU)
    python -m benchmarks.bench_detect_at_scale memory --images 10000             # peak RSS, first vs last 1000
    python -m benchmarks.bench_detect_at_scale tiles DATASET --list VAL_LIST --grid 3   # large pages

Every figure comes from the real ``demo.py`` run as a user runs it (a subprocess, the shipped model by default,
``--no-txt``), the wall time from start to exit minus nothing (start-up included; the script prints demo.py's own
images/s lines too).

- throughput: ``--images`` small images (the repository's sample images cut to 96-128 px, written once to a
  temporary folder), short side 64, one process (``OMP_NUM_THREADS`` = all cores) against ``torchrun
  --nproc_per_node 2`` (one thread each).
- memory: one process over ``--images`` small images; the resident memory (VmRSS of demo.py and its loader
  processes, sampled every 0.05 s) is paired with the number of result lines written at that moment; printed:
  the peak, and the mean over the first and over the last thousand images, and their ratio.
- tiles: ``--grid`` x ``--grid`` mosaics of held-out photos of an ICDAR 2015-layout dataset (``--list``: e.g. the
  fixed split's validation list; every photo at its own resolution, its ground truth moved with it), detected
  shrunk (short side 736, demo.py's default) and in tiles at full resolution (``--tile``), scored with the IoU
  protocol (P, R, F) and timed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import numpy as np

if __package__ in (None, ''):  # run by its path: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, 'assets', 'images')


def small_images(folder: str, count: int) -> str:
    """``count`` small PNG images (96-128 px high, at most 160 wide) cut from the repository's sample images."""
    os.makedirs(folder, exist_ok=True)
    sources = [
        cv2.imread(os.path.join(SAMPLES, name)) for name in sorted(os.listdir(SAMPLES)) if name[-4:] in ('.jpg', '.png')
    ]
    for index in range(count):
        image = sources[index % len(sources)]
        height = 96 + 16 * (index % 3)
        image = cv2.resize(image, (int(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)
        offset = (index * 7) % max(1, image.shape[1] - 160)
        cv2.imwrite(os.path.join(folder, f'{index:06d}.png'), np.ascontiguousarray(image[:, offset : offset + 160]))
    return folder


def run_demo(arguments: list, processes: int = 1, threads: int | None = None, sample=None) -> tuple[float, str]:
    """Runs demo.py (under torchrun with ``processes`` > 1); (wall seconds, its output). ``sample(pid)`` is called
    every 0.05 s while it runs."""
    environment = dict(os.environ, PYTHONPATH=ROOT)
    if threads is not None:
        environment['OMP_NUM_THREADS'] = str(threads)
    launcher = ['-m', 'torch.distributed.run', '--nproc_per_node', str(processes), '--master_port', '0']
    command = [sys.executable, *(launcher if processes > 1 else []), os.path.join(ROOT, 'demo.py'), *arguments]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:
        if sample is not None:
            sample(process.pid)
        time.sleep(0.05)
    reader.join()
    text = ''.join(output)
    if process.returncode != 0:
        raise SystemExit(f'demo.py failed ({process.returncode}):\n{text[-3000:]}')
    return time.perf_counter() - started, text


def speed_lines(output: str) -> str:
    return '; '.join(line.strip() for line in output.splitlines() if 'images/s' in line and 'after' not in line)


def throughput(args, work: str) -> None:
    folder = small_images(os.path.join(work, 'images'), args.images)
    cores = os.cpu_count() or 2
    common = ['--image_path', folder, '--image_short_side', '64', '--no-txt', '--batch_size', str(args.batch_size)]
    print(f'{args.images} images of 96-128 x 160 px, short side 64, the shipped model, {cores} cores')
    for processes, threads, workers in ((1, cores, 0), (1, cores, 1), (2, 1, 0), (2, 1, 1)):
        out = os.path.join(work, f'out_{processes}_{workers}')
        seconds, output = run_demo(common + ['--result_dir', out, '--workers', str(workers)], processes, threads)
        print(
            f'{processes} process(es) x {threads} thread(s), --workers {workers}: {args.images / seconds:.1f} images/s '
            f'wall ({seconds:.1f} s, start-up included) | demo.py: {speed_lines(output)}'
        )


def rss_of_tree(pid: int) -> int:
    """Resident memory (bytes) of ``pid`` and its children (the loader processes)."""
    total = 0
    try:
        children = open(f'/proc/{pid}/task/{pid}/children').read().split()
    except OSError:
        children = []
    for process in [str(pid), *children]:
        try:
            with open(f'/proc/{process}/status') as handle:
                total += next(int(line.split()[1]) * 1024 for line in handle if line.startswith('VmRSS'))
        except (OSError, StopIteration):
            pass
    return total


def memory(args, work: str) -> None:
    folder = small_images(os.path.join(work, 'images'), args.images)
    out = os.path.join(work, 'out')
    results = os.path.join(out, 'results.jsonl')
    samples: list = []  # (lines written, rss)

    def sample(pid: int) -> None:
        lines = 0
        if os.path.exists(results):
            with open(results, 'rb') as handle:
                lines = handle.read().count(b'\n')
        samples.append((lines, rss_of_tree(pid)))

    common = ['--image_path', folder, '--image_short_side', '64', '--no-txt', '--result_dir', out]
    seconds, output = run_demo(common + ['--workers', str(args.workers)], sample=sample)
    first = [rss for lines, rss in samples if 0 < lines <= 1000]
    last = [rss for lines, rss in samples if lines > args.images - 1000]
    mib = 1024 * 1024
    print(f'{args.images} images, 1 process, --workers {args.workers}: {seconds:.1f} s | {speed_lines(output)}')
    print(
        f'resident memory (demo.py and loader processes): peak {max(rss for _, rss in samples) / mib:.0f} MiB; '
        f'first 1000 images mean {np.mean(first) / mib:.1f} MiB, last 1000 mean {np.mean(last) / mib:.1f} MiB, '
        f'last / first {np.mean(last) / np.mean(first):.3f} ({len(first)} / {len(last)} samples)'
    )


def mosaics(dataset: str, names: list, grid: int, folder: str) -> str:
    """``grid`` x ``grid`` mosaics of the photos ``names`` (each at its own resolution, 1280x720 in ICDAR 2015)
    in ``folder``/images, their ground truth, moved with each photo, in ``folder``/gts (ICDAR 2015 format)."""
    os.makedirs(os.path.join(folder, 'images'), exist_ok=True)
    os.makedirs(os.path.join(folder, 'gts'), exist_ok=True)
    per = grid * grid
    for number in range(len(names) // per):
        group = names[number * per : (number + 1) * per]
        photos = [cv2.imread(os.path.join(dataset, 'train_images', name)) for name in group]
        height, width = photos[0].shape[:2]
        page = np.zeros((height * grid, width * grid, 3), np.uint8)
        lines = []
        for index, (name, photo) in enumerate(zip(group, photos)):
            top, left = (index // grid) * height, (index % grid) * width
            page[top : top + photo.shape[0], left : left + photo.shape[1]] = photo[:height, :width]
            gts = [os.path.join(dataset, 'train_gts', f) for f in (f'{name}.txt', f'{os.path.splitext(name)[0]}.txt')]
            with open(next((p for p in gts if os.path.exists(p)), gts[-1]), encoding='utf-8-sig') as handle:
                for line in handle:
                    parts = line.strip().split(',')
                    if len(parts) < 9:
                        continue
                    xy = [int(v) + (left if i % 2 == 0 else top) for i, v in enumerate(parts[:8])]
                    lines.append(','.join(map(str, xy)) + ',' + ','.join(parts[8:]))
        cv2.imwrite(os.path.join(folder, 'images', f'page{number:03d}.jpg'), page, [cv2.IMWRITE_JPEG_QUALITY, 95])
        with open(os.path.join(folder, 'gts', f'page{number:03d}.txt'), 'w', encoding='utf-8') as handle:
            handle.write('\n'.join(lines) + '\n')
    return folder


def tiles(args, work: str) -> None:
    if not args.dataset:
        raise SystemExit('tiles: give the dataset folder (ICDAR 2015 layout) and --list.')
    with open(args.list, encoding='utf-8') as handle:
        names = [line.strip() for line in handle if line.strip()]
    folder = mosaics(args.dataset, names[: args.pages * args.grid**2], args.grid, os.path.join(work, 'pages'))
    pages = len(os.listdir(os.path.join(folder, 'images')))
    size = cv2.imread(os.path.join(folder, 'images', 'page000.jpg')).shape
    print(f'{pages} pages of {args.grid}x{args.grid} held-out photos, {size[1]}x{size[0]} px, the shipped model')
    for label, options in (('shrunk to short side 736', []), (f'tiles of {args.tile}', ['--tile', str(args.tile)])):
        out = os.path.join(work, label.replace(' ', '_'))
        seconds, output = run_demo(['--image_path', os.path.join(folder, 'images'), '--result_dir', out, *options])
        score = (
            subprocess.run(
                [
                    sys.executable,
                    os.path.join(ROOT, 'tools', 'score_results.py'),
                    '--gt',
                    os.path.join(folder, 'gts'),
                    '--det',
                    out,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        print(f'{label}: {seconds / pages:.2f} s/page (start-up included) | {score} | demo.py: {speed_lines(output)}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mode', choices=['throughput', 'memory', 'tiles'])
    parser.add_argument('dataset', nargs='?', help='tiles: an ICDAR 2015-layout folder (train_images/, train_gts/)')
    parser.add_argument('--images', type=int, default=2000, help='throughput / memory: number of small images')
    parser.add_argument('--batch_size', type=int, default=1)
    parser.add_argument('--workers', type=int, default=1, help='memory: demo.py --workers')
    parser.add_argument('--list', help='tiles: the photos to use (one name per line), e.g. a validation list')
    parser.add_argument('--grid', type=int, default=3, help='tiles: photos per page side')
    parser.add_argument('--pages', type=int, default=11, help='tiles: number of pages')
    parser.add_argument('--tile', type=int, default=1024, help='tiles: demo.py --tile')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='bench_scale_') as work:
        {'throughput': throughput, 'memory': memory, 'tiles': tiles}[args.mode](args, work)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
