#!/usr/bin/env python
"""Detect text in an image or a folder of images (walked recursively).

    python demo.py experiments/seg_detector/totaltext_resnet50_deform_thre.yaml \
        --resume pretrained/totaltext_resnet50 --image_path photos/ --polygon --box_thresh 0.6 --visualize

For each image it writes ``res_<name>.txt`` (one detection per line: x,y pairs then the score) and,
with ``--visualize``, ``<name>.jpg`` with the detections drawn; ``results.json`` holds every result.
An unreadable file is reported by name and skipped.

The model runs on the fastest path whose detections equal the plain model's (inference/paths.py; the first lines
printed say which and why): on a CPU, ONNX Runtime on an export made once per checkpoint and cached in
``--cache_dir`` (default ``$DBNET_CACHE_DIR``, else ``~/.cache/dbnet/onnx``); on CUDA, or without onnxruntime,
the optimised PyTorch model. ``--plain`` runs the model as built. With more than one image, reading, resizing,
post-processing and writing overlap with the forward passes (``--no-pipeline``: one after the other). The last
line gives images/s and s/image, start-up excluded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

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
    return args


def result_name(image_path: str, root: str) -> str:
    """A unique name for an image's results: its path below ``root`` without extension, '/' -> '_'."""
    if os.path.isfile(root):
        return os.path.splitext(os.path.basename(image_path))[0]
    relative = os.path.splitext(os.path.relpath(image_path, root))[0]
    return relative.replace(os.sep, '_')


def build_detector(args):
    """Set-up, once per run: the detector of ``args`` (the PyTorch model from the experiment and checkpoint, or
    the ONNX file) and the box_thresh it uses. Returns (detector, box_thresh)."""
    if args.onnx is not None:
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
            pipeline=bool(args.pipeline),
        )
        box_thresh = detector.representer.box_thresh
        source = '--box_thresh' if args.box_thresh is not None else f'the metadata of {args.onnx}'
        print(f'box_thresh {box_thresh} (from {source})', flush=True)
        print(f'path: onnxruntime (--onnx {args.onnx})', flush=True)
        return detector, box_thresh
    from inference.build import detector_from_experiment

    detector = detector_from_experiment(
        args.exp,
        args.resume,
        overrides=args.opt,
        device=args.device,
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
        pipeline=bool(args.pipeline),
    )
    return detector, detector.box_thresh


def detect_images(args, images: list[str], detector, box_thresh: float, on_result=None) -> tuple[dict, list[str]]:
    """The per-image work: reads each of ``images``, detects, writes ``res_<name>.txt`` (and ``<name>.jpg`` with
    --visualize) into ``args.result_dir``, then ``results.json``. ``on_result``: called with no argument as each
    image's result comes (timing). Returns (results by path, unreadable paths)."""
    from concern.result_files import write_result_file
    from data.image_io import ImageReadError, read_image
    from structure.visualizers import draw_polygons

    log = logging.getLogger('dbnet')
    os.makedirs(args.result_dir, exist_ok=True)
    results, failed, decoded = {}, [], deque()

    def read_images():
        """Decodes the images as the detector asks for them (a batch at a time; with --pipeline in the detector's
        reading thread, a few batches ahead): bounded memory on folders of huge photos; unreadable files are
        reported and skipped."""
        for path in tqdm(images, desc='detecting', unit='image'):
            try:
                image = read_image(path, max_pixels=args.max_pixels)
            except ImageReadError as error:
                log.warning('skipped: %s', error)
                failed.append(path)
                continue
            decoded.append((path, image if args.visualize else None))  # the full image is kept only to draw on
            yield image
            del image

    def write(name, image, polygons, scores):
        write_result_file(os.path.join(args.result_dir, f'res_{name}.txt'), polygons, scores)
        if args.visualize:
            import cv2

            cv2.imwrite(os.path.join(args.result_dir, f'{name}.jpg'), draw_polygons(image, polygons, scores))

    # with --pipeline the files are written in a thread of their own too, at most 2 images behind
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix='dbnet-write') if args.pipeline else None
    writes = deque()
    try:
        for polygons, scores in detector.detect_stream(read_images()):
            path, image = decoded.popleft()  # results come in input order
            name = result_name(path, args.image_path)
            if writer is None:
                write(name, image, polygons, scores)
            else:
                writes.append(writer.submit(write, name, image, polygons, scores))
                while len(writes) > 2:
                    writes.popleft().result()
            results[path] = [
                {'points': [[int(x), int(y)] for x, y in polygon], 'score': float(score)}
                for polygon, score in zip(polygons, scores)
            ]
            if on_result is not None:
                on_result()
            del image  # released once written
        while writes:
            writes.popleft().result()
    finally:
        if writer is not None:
            writer.shutdown(wait=True, cancel_futures=True)
    with open(os.path.join(args.result_dir, 'results.json'), 'w', encoding='utf-8') as handle:
        json.dump(
            {
                'experiment': args.exp,
                'checkpoint': args.onnx or args.resume,
                'polygon': args.polygon,
                'box_thresh': box_thresh,
                'images': results,
                'failed': failed,
            },
            handle,
            indent=1,
        )
    return results, failed


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    # Imported here so that `--help` and path errors answer quickly (and, with --onnx, torch is never imported).
    from data.image_io import find_images

    images = find_images(args.image_path)  # before the model is built, so that a wrong path is reported at once
    if args.pipeline is None:
        args.pipeline = len(images) > 1
    detector, box_thresh = build_detector(args)
    start = time.perf_counter()  # start-up (model, export or cache) excluded: the per-image work only
    result_times = []
    results, failed = detect_images(
        args, images, detector, box_thresh, on_result=lambda: result_times.append(time.perf_counter())
    )
    end = time.perf_counter()
    elapsed = end - start
    print(f'{len(results)} images processed, {len(failed)} skipped; results in {args.result_dir}')
    if results:
        print(
            f'speed: {len(results) / elapsed:.2f} images/s, {elapsed / len(results):.3f} s/image '
            f'(reading, detecting, writing; start-up excluded; pipeline {"on" if args.pipeline else "off"})'
        )
    if len(result_times) > 1:  # the first image carries one-time work: warm-up, and with --compile the compile
        rest = (end - result_times[0]) / (len(result_times) - 1)
        print(f'after the first image ({result_times[0] - start:.1f} s): {1 / rest:.2f} images/s, {rest:.3f} s/image')
    for path in failed:
        print(f'  skipped (unreadable): {path}')
    return 0 if results else 1


if __name__ == '__main__':
    sys.exit(run_main(main))
