#!/usr/bin/env python
"""Detect text in an image or a folder of images (walked recursively), on one process or many.

    python demo.py experiments/seg_detector/totaltext_resnet50_deform_thre.yaml \
        --resume pretrained/totaltext_resnet50 --image_path photos/ --polygon --box_thresh 0.6 --visualize
    torchrun --nproc_per_node 4 demo.py ... --image_path photos/ --no-txt --workers 4   # a large folder

Results: ``results.jsonl`` in ``--result_dir`` (one line per image: path, size, detections with their scores, the
run's id; ``run.json`` holds the model and settings of that id), ``results.rank<R>.jsonl`` per process under
torchrun; ``res_<name>.txt`` per image in the ICDAR format (``--no-txt``: none) and, with ``--visualize``,
``<name>.jpg`` with the detections drawn. A run stopped at any point and started again with the same command
skips the images it has done (``concern/result_log.py``); a result folder of another model or other settings is
refused. Under torchrun each process takes every N-th image of the sorted list (its rank's share), on its own GPU
or CPU threads. An unreadable file is reported by name, recorded with its error and skipped.

The model runs on the fastest path whose detections equal the plain model's (inference/paths.py; the first lines
printed say which and why): on a CPU, ONNX Runtime on an export made once per checkpoint and cached in
``--cache_dir`` (default ``$DBNET_CACHE_DIR``, else ``~/.cache/dbnet/onnx``); on CUDA, or without onnxruntime,
the optimised PyTorch model. ``--plain`` runs the model as built. Images are read and resized ``--workers``
processes ahead of the model (0: one thread) and batched by size; post-processing runs in a second thread
(``--no-pipeline``: all in one thread). ``--tile N`` runs large pages at full resolution in overlapping N x N tiles
whose maps are stitched into one (inference/tiling.py). The last lines give images/s, start-up excluded.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from tqdm import tqdm

from concern.cli import run_main
from concern.model_zoo import DEFAULT_MODEL, add_model_argument, use_shipped_model
from inference.arguments import add_inference_arguments


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Run a DBNet model on images.')
    parser.add_argument(
        'exp',
        nargs='?',
        help=f'experiment YAML file (not needed with --model or --onnx; with neither: --model {DEFAULT_MODEL})',
    )
    parser.add_argument('--resume', help="checkpoint (this project's or the original's); not needed with --onnx")
    parser.add_argument(
        '--non_strict',
        action='store_true',
        help='load a checkpoint that does not fit the experiment (missing keys or other shapes): '
        'the matching keys only, as the original did (default: refuse it)',
    )
    parser.add_argument(
        '--onnx',
        metavar='MODEL.onnx',
        help='run this exported model (convert_to_onnx.py) with ONNX Runtime instead; no torch needed',
    )
    parser.add_argument('--image_path', required=True, help='an image file or a folder (searched recursively)')
    parser.add_argument('--result_dir', default='./demo_results/', help='where results are written')
    parser.add_argument('--polygon', action='store_true', help='output polygons (curved text) instead of boxes')
    parser.add_argument(
        '--box_thresh',
        type=float,
        help="minimum mean score of a detection (default: the experiment's representer box_thresh, "
        'else 0.6 as in the original; with --onnx: the one stored in the ONNX file)',
    )
    parser.add_argument('--thresh', type=float, help='binarisation threshold of the probability map')
    parser.add_argument('--image_short_side', type=int, default=736, help='resize the short side to this')
    parser.add_argument('--batch_size', type=int, default=1, help='images per forward pass (same-size images)')
    parser.add_argument(
        '--pipeline',
        action=argparse.BooleanOptionalAction,
        help='decode, resize, post-process and write in a second thread while the next batch runs through the '
        'model (same results); default: on when there is more than one image (--no-pipeline: off)',
    )
    add_scale_arguments(parser)
    add_inference_arguments(parser)
    parser.add_argument('--visualize', action='store_true', help='write overlay images')
    parser.add_argument('--device', help="'cpu', 'cuda' or 'cuda:N' (default: CUDA when available)")
    parser.add_argument(
        '--max_pixels',
        type=int,
        default=250_000_000,
        help='refuse images with more pixels than this (decompression bombs)',
    )
    parser.add_argument('--opt', action='append', default=[], metavar='PATH=VALUE', help='override a config value')
    add_model_argument(parser, f'; the default without them and --onnx: {DEFAULT_MODEL}')
    args = parser.parse_args(argv)
    check_args(args, parser)
    return args


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """--workers, --tile, --tile_overlap and --txt: reading ahead, large pages, the per-image files."""
    parser.add_argument(
        '--workers',
        type=int,
        default=0,
        help='processes that read and resize images ahead of the model (default 0: one thread of this process)',
    )
    parser.add_argument(
        '--tile',
        type=int,
        metavar='N',
        help='run each image at full resolution in overlapping N x N tiles (N a multiple of 32), stitched into one '
        'probability map: for scans and posters whose text is too small once the short side is shrunk',
    )
    parser.add_argument(
        '--tile_overlap', type=int, help='pixels the tiles overlap (default N/4; wider than the tallest word)'
    )
    parser.add_argument(
        '--txt',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='write res_<name>.txt per image, the ICDAR result format (--no-txt: results.jsonl only)',
    )


def check_args(args, parser) -> None:
    """The options that exclude or need each other; the shipped model when neither an experiment nor --onnx is
    given."""
    if args.onnx is not None and args.model is not None:
        parser.error('--onnx runs an exported file and --model a shipped checkpoint; give one of them.')
    if args.onnx is None:
        use_shipped_model(args, parser, default=True, required=False)
    if args.onnx is None and (args.exp is None or args.resume is None):
        parser.error('an experiment file and --resume are required (or --onnx MODEL.onnx).')
    if args.onnx is not None and (args.optimize or args.compile or args.precision not in (None, 'auto')):
        parser.error(
            '--optimize, --precision and --compile apply to the PyTorch model, not to --onnx, except --precision auto '
            '(quantise an ONNX model with convert_to_onnx.py --int8 instead).'
        )
    if args.onnx is not None and args.plain:
        parser.error('--plain runs the PyTorch model of the experiment and --resume; drop --onnx or --plain.')
    check_tiling(args, parser)
    if args.workers < 0:
        parser.error(f'--workers {args.workers}: give 0 (one reading thread) or more processes.')


def check_tiling(args, parser) -> None:
    """``--tile`` / ``--tile_overlap``: a tile a multiple of 32 (64 or more), an overlap below half of it."""
    if args.tile is None:
        if args.tile_overlap is not None:
            parser.error('--tile_overlap applies to --tile N; give --tile too.')
        return
    if args.tile < 64 or args.tile % 32:
        parser.error(f'--tile {args.tile}: give a multiple of 32 of at least 64, e.g. --tile 1024.')
    if args.tile_overlap is None:
        args.tile_overlap = args.tile // 4
    if not 0 <= args.tile_overlap < args.tile // 2:
        parser.error(f'--tile_overlap {args.tile_overlap}: give 0 or more and less than half of --tile {args.tile}.')


def result_name(image_path: str, root: str) -> str:
    """A unique name for an image's results: its path below ``root`` without extension, '/' -> '_'."""
    if os.path.isfile(root):
        return os.path.splitext(os.path.basename(image_path))[0]
    relative = os.path.splitext(os.path.relpath(image_path, root))[0]
    return relative.replace(os.sep, '_')


def process_shard() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) of this process in a torchrun launch (its environment); (0, 1, 0) alone."""
    return int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1)), int(os.environ.get('LOCAL_RANK', 0))


def build_detector(args, local_rank: int = 0):
    """Set-up, once per run: the detector of ``args`` (the PyTorch model from the experiment and checkpoint, on
    this process's GPU ``local_rank`` when CUDA runs it, or the ONNX file). Its ``model_file`` attribute is the
    file whose weights run."""
    if args.onnx is not None:
        return build_onnx_detector(args)
    from inference.build import detector_from_experiment

    detector = detector_from_experiment(
        args.exp,
        args.resume,
        overrides=args.opt,
        device=args.device,
        local_rank=local_rank,
        plain=args.plain,
        optimize=args.optimize,
        precision=args.precision,
        compiled=args.compile,
        strict=not args.non_strict,
        cache_dir=args.cache_dir,
        box_thresh=args.box_thresh,
        thresh=args.thresh,
        announce=lambda line: print(line, flush=True),
        image_short_side=args.image_short_side,
        is_output_polygon=args.polygon,
        batch_size=args.batch_size,
    )
    detector.model_file = args.resume
    return detector


def build_onnx_detector(args):
    """The detector of ``--onnx`` (with ``--precision auto``: its checked int8 copy where it pays)."""
    from concern.errors import import_optional
    from inference.onnx_runtime import OnnxDetector

    import_optional('onnxruntime', 'demo.py --onnx')
    model_path = args.onnx
    if args.precision == 'auto':
        from inference.int8_check import auto_onnx_model

        model_path, reason = auto_onnx_model(args.onnx)
        print(reason, flush=True)
    detector = OnnxDetector(
        model_path,
        image_short_side=args.image_short_side,
        is_output_polygon=args.polygon,
        batch_size=args.batch_size,
        thresh=args.thresh,
        box_thresh=args.box_thresh,
        intra_op_num_threads=int(os.environ.get('OMP_NUM_THREADS', 0)),  # torchrun: the process's share
    )
    source = '--box_thresh' if args.box_thresh is not None else f'the metadata of {args.onnx}'
    print(f'box_thresh {detector.representer.box_thresh} (from {source})', flush=True)
    print(f'path: onnxruntime (--onnx {model_path})', flush=True)
    detector.model_file = model_path
    return detector


def run_settings(args, detector) -> dict:
    """What makes two runs' results comparable: the model's file and content, the experiment, and every option
    that changes detections. A result folder holds the results of one such set (``concern.result_log``)."""
    from concern.hashing import file_sha256

    representer = detector.representer
    path = getattr(detector, 'path', None)
    return {
        'model': detector.model_file,
        'model_sha256': file_sha256(detector.model_file),
        'experiment': args.exp,
        'overrides': list(args.opt),
        'precision': path.precision if path is not None else 'onnx',
        'polygon': args.polygon,
        'image_short_side': None if args.tile else args.image_short_side,
        'tile': args.tile,
        'tile_overlap': args.tile_overlap,
        'thresh': float(representer.thresh),
        'box_thresh': float(representer.box_thresh),
        'max_candidates': int(representer.max_candidates),
        'unclip_ratio': float(representer.unclip_ratio),
    }


def result_record(path: str, size, polygons, scores) -> dict:
    """One line of results.jsonl."""
    detections = [
        {'points': [[int(x), int(y)] for x, y in polygon], 'score': round(float(score), 6)}
        for polygon, score in zip(polygons, scores)
    ]
    return {'image': path, 'height': int(size[0]), 'width': int(size[1]), 'detections': detections}


def write_image_files(args, path: str, polygons, scores) -> None:
    """``res_<name>.txt`` (unless --no-txt) and, with --visualize, ``<name>.jpg`` (the image read again)."""
    from concern.result_files import write_result_file

    name = result_name(path, args.image_path)
    if args.txt:
        write_result_file(os.path.join(args.result_dir, f'res_{name}.txt'), polygons, scores)
    if args.visualize:
        import cv2

        from data.image_io import read_image
        from structure.visualizers import draw_polygons

        image = read_image(path, max_pixels=args.max_pixels)
        cv2.imwrite(os.path.join(args.result_dir, f'{name}.jpg'), draw_polygons(image, polygons, scores))


def prepared_images(args, images: list[str], log, failed: list):
    """``(path, PreparedImage)`` of each readable image, read ``--workers`` processes ahead (inline with
    --no-pipeline); an unreadable one is reported, recorded in ``log`` with its error and added to ``failed``."""
    from functools import partial

    from data.image_io import ImageReadError
    from inference.image_loader import load_images
    from inference.tiling import read_and_prepare

    prepare = partial(
        read_and_prepare,
        short_side=args.image_short_side,
        tile=args.tile,
        overlap=args.tile_overlap or 0,
        max_pixels=args.max_pixels,
    )
    if args.pipeline or args.workers:
        loaded = load_images(images, prepare, args.workers, in_flight=max(2, args.workers) * 2)
    else:
        loaded = ((path, prepare(path)) for path in images)
    for path, prepared in loaded:
        if isinstance(prepared, ImageReadError):
            logging.getLogger('dbnet').warning('skipped: %s', prepared)
            log.write({'image': path, 'error': str(prepared)})
            failed.append(path)
            continue
        yield path, prepared


def detect_images(args, images: list[str], detector, log, on_result=None) -> tuple[int, list[str]]:
    """The per-image work: reads and prepares ``images``, detects (batched by size), writes each image's files
    and then its line of ``log`` (a ``concern.result_log.ResultLog``), so that a line means its files are
    written. ``on_result``: called with no argument as each image's result comes (timing). Returns (images
    detected, unreadable paths)."""
    from inference.batching import detect_prepared

    os.makedirs(args.result_dir, exist_ok=True)
    failed: list = []
    count = 0
    results = detect_prepared(detector, prepared_images(args, images, log, failed), pipeline=bool(args.pipeline))
    for path, size, polygons, scores in tqdm(results, total=len(images), desc='detecting', unit='image'):
        write_image_files(args, path, polygons, scores)
        log.write(result_record(path, size, polygons, scores))
        count += 1
        if on_result is not None:
            on_result()
    return count, failed


def report(args, count: int, failed: list, start: float, result_times: list, prefix: str) -> None:
    """The closing lines: images done and skipped, images/s (start-up excluded), and after the first image."""
    end = time.perf_counter()
    elapsed = end - start
    print(f'{prefix}{count} images processed, {len(failed)} skipped; results in {args.result_dir}')
    if count:
        print(
            f'{prefix}speed: {count / elapsed:.2f} images/s, {elapsed / count:.3f} s/image '
            f'(reading, detecting, writing; start-up excluded; pipeline {"on" if args.pipeline else "off"})'
        )
    if len(result_times) > 1:  # the first image carries one-time work: warm-up, and with --compile the compile
        rest = (end - result_times[0]) / (len(result_times) - 1)
        print(f'after the first image ({result_times[0] - start:.1f} s): {1 / rest:.2f} images/s, {rest:.3f} s/image')
    for path in failed:
        print(f'  skipped (unreadable): {path}')


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    # Imported here so that `--help` and path errors answer quickly (and, with --onnx, torch is never imported).
    from concern.result_log import ResultLog
    from data.image_io import find_images

    images = find_images(args.image_path)  # before the model is built, so that a wrong path is reported at once
    rank, world_size, local_rank = process_shard()
    mine = images[rank::world_size]
    if args.pipeline is None:
        args.pipeline = len(mine) > 1
    detector = build_detector(args, local_rank)
    prefix = f'rank {rank}/{world_size}: ' if world_size > 1 else ''
    with ResultLog(args.result_dir, run_settings(args, detector), rank, world_size) as log:
        todo = [path for path in mine if path not in log.done]
        if len(todo) < len(mine):
            print(f'{prefix}{len(mine) - len(todo)} of {len(mine)} images already done in {args.result_dir}; skipped')
        start = time.perf_counter()  # start-up (model, export or cache) excluded: the per-image work only
        result_times: list = []
        count, failed = detect_images(args, todo, detector, log, lambda: result_times.append(time.perf_counter()))
    report(args, count, failed, start, result_times, prefix)
    return 0 if count or len(todo) < len(mine) or not mine else 1


if __name__ == '__main__':
    sys.exit(run_main(main))
