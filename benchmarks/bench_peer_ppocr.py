"""The shipped detector against PP-OCRv4 det (the model PaddleOCR and RapidOCR ship) on the same photos: seconds per
photo and precision / recall / F with the same IoU protocol.

    pip install rapidocr_onnxruntime   # PP-OCRv4 det's ONNX file and RapidOCR's own pre- and post-processing
    python -m benchmarks.bench_peer_ppocr DATASET_DIR --list DATASET_DIR/split_val_list.txt --threads 2

Each method runs with its own defaults: PP-OCRv4 det through RapidOCR's ``TextDetector`` (short side 736, thresh
0.3, box_thresh 0.5, unclip 1.6, dilation), the shipped model through demo.py's default path (short side 736, its
thresh / box_thresh). The photos are read first; the time is that of one ``detect`` call per photo (resize,
normalise, the network, post-processing), one photo at a time, the median of ``--rounds`` passes over the photos
after one warm-up photo. The scores are those of tools/score_results.py (protocol iou) on the result files both
write in the ICDAR format. Not a test: it needs the dataset and the optional package.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

if __package__ in (None, ''):  # run by its path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2
import numpy as np

from concern.result_files import result_filename, write_result_file


def ppocr_detector(threads: int):
    import rapidocr_onnxruntime
    from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
    from rapidocr_onnxruntime.utils import read_yaml

    folder = os.path.dirname(rapidocr_onnxruntime.__file__)
    config = read_yaml(os.path.join(folder, 'config.yaml'))['Det']
    config['model_path'] = os.path.join(folder, config['model_path'])
    config['intra_op_num_threads'] = threads
    detector = TextDetector(config)

    def detect(image):
        boxes, _ = detector(image)
        return [] if boxes is None else [np.asarray(box) for box in boxes], None

    return detect


def shipped_detector(threads: int):
    import torch

    from concern.model_zoo import DEFAULT_MODEL, MODELS, verified_weights
    from inference.build import detector_from_experiment

    torch.set_num_threads(threads)
    model = MODELS[DEFAULT_MODEL]
    detector = detector_from_experiment(model.experiment, verified_weights(model), device='cpu', image_short_side=736)

    def detect(image):
        polygons, scores = detector.detect([image])[0]
        return [np.asarray(p) for p in polygons], scores

    return detect


def write_results(folder, names, results):
    """Each photo's detections as ``res_<stem>.txt`` in the ICDAR format (concern.result_files, as demo.py)."""
    for name, (polygons, scores) in zip(names, results):
        write_result_file(os.path.join(folder, result_filename(name)), polygons, scores)


def run(detect, images, rounds):
    detect(images[0])  # warm-up: sessions, caches, first-call allocations
    times, results = [], None
    for _ in range(rounds):
        results, elapsed = [], []
        for image in images:
            start = time.perf_counter()
            results.append(detect(image))
            elapsed.append(time.perf_counter() - start)
        times.append(statistics.mean(elapsed))
    return statistics.median(times), results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='The shipped detector against PP-OCRv4 det.')
    parser.add_argument('dataset', help='DB layout folder (train_images/ or test_images/, matching *_gts/)')
    parser.add_argument('--list', required=True, help='the image names to run (one per line)')
    parser.add_argument('--images', default='train_images', help='sub-folder of the images (default train_images)')
    parser.add_argument('--gts', default='train_gts', help='sub-folder of the ground truth (default train_gts)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=1)
    args = parser.parse_args(argv)
    from tools.score_results import score

    with open(args.list) as handle:
        names = [line.strip() for line in handle if line.strip()]
    images = [cv2.imread(os.path.join(args.dataset, args.images, name), cv2.IMREAD_COLOR) for name in names]
    with tempfile.TemporaryDirectory() as folder:
        gt_folder = os.path.join(folder, 'gt')
        os.makedirs(gt_folder)
        for name in names:
            source = os.path.join(args.dataset, args.gts, name + '.txt')
            os.symlink(os.path.abspath(source), os.path.join(gt_folder, f'gt_{os.path.splitext(name)[0]}.txt'))
        print(f'{len(images)} photos, {args.threads} threads')
        print('method                  s/photo  precision  recall  F')
        for method, build in (('PP-OCRv4 det (RapidOCR)', ppocr_detector), ('shipped ic15_resnet18', shipped_detector)):
            seconds, results = run(build(args.threads), images, args.rounds)
            write_results(os.path.join(folder, method[:6]), names, results)
            metrics, _ = score(gt_folder, os.path.join(folder, method[:6]))
            p, r, f = (metrics[key] for key in ('precision', 'recall', 'fmeasure'))
            print(f'{method:<23} {seconds:7.3f}  {p:9.3f}  {r:6.3f}  {f:.3f}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
