#!/usr/bin/env python
"""Evaluate a checkpoint on an experiment's test set: precision, recall, F-measure.

    python eval.py experiments/seg_detector/totaltext_resnet50_deform_thre.yaml \
        --resume pretrained/totaltext_resnet50 --polygon --box_thresh 0.6

Prints P / R / F and saves them to ``<result_dir>/metrics.json``; writes ``res_<image>.txt`` per image
(ICDAR submission format: integer clockwise coordinates, the score as the last column);
the first line printed says which box_thresh is used and where it came from (``--box_thresh``, else the
experiment's representer, else the original's 0.6); ``--box_thresh_sweep 0.3:0.9:0.05`` scores every threshold
from one pass of the model and keeps the best (printed metrics, metrics.json and res_*.txt all describe it);
``--thresh_sweep 0.2:0.6:0.1`` does the same for the binarisation threshold (the post-processing reruns on the
same model output for each value; with both sweeps every pair is scored);
``--bootstrap 1000`` adds the 95% interval of P / R / F over the test images (they are drawn again with
replacement that many times): how far the figures could move on another test set of that size;
``--speed`` reports model-only and end-to-end images per second. The model runs on the fastest path whose
detections equal the plain model's (ONNX Runtime on a CPU, on an export cached in ``--cache_dir``; the optimised
PyTorch model on CUDA); ``--plain`` runs it as built (see demo.py and inference/paths.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import torch

from concern.cli import run_main, set_loader_workers, set_test_size
from concern.config import ConfigError
from concern.distributed import DistributedContext, choose_device
from concern.errors import UserError
from concern.evaluation import evaluate, shard_loader
from concern.model_zoo import add_model_argument, use_shipped_model
from concern.protocols import METRIC_KEYS
from concern.runtime import build_model_with_weights, load_experiment_for_inference
from inference.arguments import add_inference_arguments, inference_path_from_args
from inference.precision import check_precision_device
from inference.thresholds import resolve_box_thresh


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a DBNet model.')
    parser.add_argument('exp', nargs='?', help='experiment YAML file (or --model NAME)')
    parser.add_argument('--resume', help="checkpoint (this project's or the original's)")
    add_model_argument(parser)
    parser.add_argument(
        '--non_strict',
        action='store_true',
        help='load a checkpoint that does not fit the experiment (missing keys or other shapes): '
        'the matching keys only, as the original did (default: refuse it)',
    )
    parser.add_argument('--polygon', action='store_true', help='polygon output (curved text: Total-Text, CTW1500)')
    parser.add_argument(
        '--box_thresh',
        type=float,
        help="minimum mean score of a detection (default: the experiment's representer box_thresh, "
        'else 0.6 as in the original)',
    )
    parser.add_argument('--thresh', type=float, help='binarisation threshold of the probability map')
    parser.add_argument(
        '--thresh_sweep',
        metavar='START:STOP:STEP',
        help='post-process the same model output at every binarisation threshold in [START, STOP], score each '
        '(with every box_thresh of --box_thresh_sweep, else the one box_thresh) and keep the best pair; '
        'replaces --thresh',
    )
    parser.add_argument(
        '--box_thresh_sweep',
        metavar='START:STOP:STEP',
        help='score every box_thresh in [START, STOP] from one pass of the model and keep the best '
        '(metrics, metrics.json and res_*.txt all use it); replaces --box_thresh',
    )
    parser.add_argument(
        '--test_size',
        nargs=2,
        type=int,
        metavar=('WIDTH', 'HEIGHT'),
        help="resize the test images to WIDTH x HEIGHT (multiples of 32) instead of the experiment's size "
        "(its ['Resize', {'width': W, 'height': H}] augmenter; where it keeps the ratio, the height is HEIGHT "
        'and the width follows the image)',
    )
    parser.add_argument(
        '--bootstrap',
        type=int,
        default=0,
        metavar='N',
        help='also print the 95%% interval of precision, recall and F over the test images from N resamples '
        'with replacement (seeded; e.g. 1000): the noise of a test set this size; saved in metrics.json',
    )
    parser.add_argument('--result_dir', default='./results/', help='where result files and metrics.json go')
    parser.add_argument('--no-results', dest='write_results', action='store_false', help='no res_*.txt files')
    parser.add_argument('--visualize', action='store_true', help='write overlay images to result_dir/vis')
    parser.add_argument('--speed', action='store_true', help='measure images per second')
    parser.add_argument('--speed_runs', type=int, default=3, help='repetitions for --speed')
    parser.add_argument('--num_workers', type=int, help="data-loading worker processes (default: the YAML's)")
    parser.add_argument('--device', help="'cpu', 'cuda' or 'cuda:N' (default: CUDA when available)")
    add_inference_arguments(parser)
    parser.add_argument('--opt', action='append', default=[], metavar='PATH=VALUE', help='override a config value')
    args = parser.parse_args(argv)
    use_shipped_model(args, parser)
    return args


def parse_sweep(text: str, flag: str = '--box_thresh_sweep') -> list[float]:
    try:
        start, stop, step = (float(part) for part in text.split(':'))
    except ValueError:
        raise UserError(f"{flag} '{text}' must look like START:STOP:STEP, e.g. 0.3:0.9:0.05.") from None
    if step <= 0 or stop < start:
        raise UserError(f"{flag} '{text}': STEP must be positive and STOP >= START.")
    count = int(round((stop - start) / step)) + 1
    return [round(start + index * step, 6) for index in range(count)]


def evaluation_section(config) -> str:
    """``Experiment.evaluation``, else ``Experiment.validation``: the test loaders of the experiment."""
    for path in ('Experiment.evaluation', 'Experiment.validation'):
        if config.has(path):
            return path
    raise ConfigError(f'{config.path}: defines neither Experiment.evaluation nor Experiment.validation.')


def measure_speed(model, representer, loader, device, runs: int, polygon: bool) -> dict:
    """Model-only and end-to-end (model + post-processing) images per second over ``runs`` passes."""

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    model_time = total_time = 0.0
    images = 0
    with torch.inference_mode():
        for _ in range(runs):
            for batch in shard_loader(loader, DistributedContext()):  # every image, as the evaluation saw them
                if 'image' not in batch:
                    continue
                image = batch['image'].to(device)
                sync()
                start = time.perf_counter()
                pred = model({**batch, 'image': image}, training=False)
                sync()
                middle = time.perf_counter()
                representer.represent(batch, pred.float().cpu(), is_output_polygon=polygon)
                end = time.perf_counter()
                model_time += middle - start
                total_time += end - start
                images += image.shape[0]
    return {'images': images, 'model_images_per_s': images / model_time, 'end_to_end_images_per_s': images / total_time}


def check_options(args) -> tuple[list, list]:
    """The box_thresh and thresh sweeps asked for, after the checks that the options fit together."""
    sweep = parse_sweep(args.box_thresh_sweep) if args.box_thresh_sweep else []
    thresh_sweep = parse_sweep(args.thresh_sweep, '--thresh_sweep') if args.thresh_sweep else []
    if sweep and args.box_thresh is not None:
        raise UserError(
            '--box_thresh and --box_thresh_sweep exclude each other: the sweep picks the threshold; give one of them.'
        )
    if thresh_sweep and args.thresh is not None:
        raise UserError(
            '--thresh and --thresh_sweep exclude each other: the sweep picks the threshold; give one of them.'
        )
    if args.bootstrap < 0:
        raise UserError(f'--bootstrap {args.bootstrap}: give the number of resamples, e.g. 1000 (0: none).')
    if (sweep or thresh_sweep) and args.visualize:
        raise UserError(
            '--visualize draws the detections of one threshold; run the sweep first, then '
            '--visualize with --box_thresh (and --thresh) set to the best it found.'
        )
    return sweep, thresh_sweep


def set_thresh(args, config, representer, thresh_sweep: list) -> str:
    """Applies --thresh to ``representer``, prints the thresh used and where it came from; returns that source."""
    if args.thresh is not None:
        representer.thresh = args.thresh
    if thresh_sweep:
        if not hasattr(representer, 'thresh'):
            raise UserError(
                f'--thresh_sweep: the representer of {args.exp} ({type(representer).__name__}) has no thresh to sweep.'
            )
        print(f'thresh: the best of {args.thresh_sweep} (--thresh_sweep)', flush=True)
        return '--thresh_sweep'
    if args.thresh is not None:
        source = '--thresh'
    elif config.has('Experiment.structure.representer.thresh'):
        source = f"{args.exp}'s representer"
    else:
        source = "the representer's default, the original's"
    if hasattr(representer, 'thresh'):
        print(f'thresh {representer.thresh} (from {source})', flush=True)
    return source


def print_result(name: str, result: dict, swept: bool, thresh_sweep: list, write_results: bool) -> None:
    """One dataset's lines: the sweep table and its best pair, unreadable images, the metrics, the interval."""
    at = f'box_thresh {result["box_thresh"]}' + (f', thresh {result["thresh"]}' if thresh_sweep else '')
    if swept:
        print(f'{name}: ' + ('thresh   ' if thresh_sweep else '') + 'box_thresh   precision   recall   fmeasure')
        for row in result['sweep']:
            print(
                f'{name}: '
                + (f'{row["thresh"]:6.3f}   ' if thresh_sweep else '')
                + f'{row["box_thresh"]:10.3f}   {row["precision"]:9.4f}   {row["recall"]:6.4f}'
                f'   {row["fmeasure"]:8.4f}'
            )
        print(
            f'{name}: best F {result["fmeasure"]:.4f} at {at}' + (' (res_*.txt written at it)' if write_results else '')
        )
    if result.get('skipped_files'):
        print(
            f'{name}: {len(result["skipped_files"])} image(s) could not be read and were left out of the '
            f'metrics (on_error: skip): {", ".join(result["skipped_files"])}'
        )
    print(
        f'{name}: precision {result["precision"]:.4f}  recall {result["recall"]:.4f}  '
        f'fmeasure {result["fmeasure"]:.4f}  ({at})'
    )
    if 'interval' in result:
        interval = result['interval']
        print(
            f'{name}: 95% interval over the {interval["images"]} images ({interval["resamples"]} resamples'
            + (', at the best pair: optimistic' if swept else '')
            + '): '
            + '  '.join(f'{key} [{interval[key][0]:.4f}, {interval[key][1]:.4f}]' for key in METRIC_KEYS),
            flush=True,
        )


def overlay_writer(result_dir: str):
    """``on_batch`` for ``evaluate`` with --visualize: draws each image's detections into ``result_dir``."""

    def draw(batch, polygons_batch, scores_batch):
        for index, (polygons, scores) in enumerate(zip(polygons_batch, scores_batch)):
            shape = batch['shape'][index]
            image = batch['image'][index]
            save_overlay(result_dir, str(batch['filename'][index]), image, shape, polygons, scores)

    return draw


def run_description(args, path) -> dict:
    """What metrics.json says of the run: the experiment, checkpoint and the path the model ran on."""
    return {
        'experiment': args.exp,
        'checkpoint': args.resume,
        'polygon': args.polygon,
        'path': path.name,
        'optimized': path.name == 'optimized',
        'precision': path.precision,
        'compiled': bool(args.compile),
        'test_size': args.test_size,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    sweep, thresh_sweep = check_options(args)
    config = load_experiment_for_inference(args.exp, args.opt)
    section = evaluation_section(config)
    set_loader_workers(config, section, args.num_workers)
    set_test_size(config, section, args.test_size)
    box_thresh, source = resolve_box_thresh(args.box_thresh, config)
    announced = (
        f'the best of {args.box_thresh_sweep} (--box_thresh_sweep)' if sweep else f'{box_thresh} (from {source})'
    )
    print(f'box_thresh{":" if sweep else ""} {announced}', flush=True)
    structure = config.build('Experiment.structure')
    representer, measurer = structure.representer, structure.measurer
    thresh_source = set_thresh(args, config, representer, thresh_sweep)
    loaders = config.build(section).data_loaders
    device = choose_device(args.device)
    check_precision_device(args.precision, device.type)
    model = build_model_with_weights(structure, args.resume, device, strict=not args.non_strict)
    path = inference_path_from_args(model, structure, args, device)
    model = path.model
    os.makedirs(args.result_dir, exist_ok=True)
    report = {
        **run_description(args, path),
        'box_thresh_source': '--box_thresh_sweep' if sweep else source,
        'thresh_source': thresh_source,
        'datasets': {},
    }
    for name, loader in loaders.items():
        result = evaluate(
            model,
            loader,
            representer,
            measurer,
            device,
            is_output_polygon=args.polygon,
            box_thresh=box_thresh,
            sweep=sweep,
            thresh_sweep=thresh_sweep,
            desc=name,
            result_dir=args.result_dir if args.write_results else None,
            on_batch=overlay_writer(args.result_dir) if args.visualize else None,
            bootstrap=args.bootstrap,
        )
        print_result(name, result, bool(sweep or thresh_sweep), thresh_sweep, args.write_results)
        if args.speed:
            speed = measure_speed(model, representer, loader, device, args.speed_runs, args.polygon)
            print(
                f'{name}: model {speed["model_images_per_s"]:.2f} images/s, end to end '
                f'{speed["end_to_end_images_per_s"]:.2f} images/s ({speed["images"]} images, {device})'
            )
            result['speed'] = speed
        report['datasets'][name] = result
    with open(os.path.join(args.result_dir, 'metrics.json'), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1, default=float)
    return 0


def save_overlay(result_dir, filename, image_tensor, shape, polygons, scores):
    """Draws the detections on the network's input image (de-normalised, resized back to the original
    (h, w) ``shape``, the coordinates of the detections); works for datasets with no image files too."""
    import cv2

    from data.processes.normalize_image import NormalizeImage
    from structure.visualizers import draw_polygons

    height, width = (int(value) for value in shape)
    image = cv2.resize(NormalizeImage.restore(image_tensor), (width, height))
    stem = os.path.splitext(os.path.basename(filename))[0]
    os.makedirs(os.path.join(result_dir, 'vis'), exist_ok=True)
    cv2.imwrite(os.path.join(result_dir, 'vis', f'{stem}.jpg'), draw_polygons(image, polygons, scores))


if __name__ == '__main__':
    sys.exit(run_main(main))
