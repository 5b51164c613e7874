"""Score detection result files against ground-truth files offline, with any protocol.

    python -m tools.score_results --gt GT_DIR_OR_ZIP --det DET_DIR_OR_ZIP [--protocol iou|deteval|icdar2013|tiou]
                                  [--ignore_text '###'] [--score_thresh X] [--json OUT.json]

Files are paired by sample name: the prefixes 'gt_', 'poly_gt_' and 'res_' and the extension are removed
('gt_img_12.txt' <-> 'res_img_12.txt', 'poly_gt_img5.txt' <-> 'img5.txt', '1001.txt' <-> '1001.txt').
Formats (concern/result_files.py): ICDAR 2015 'x1,y1,...,x4,y4,transcription' ground truth and
'x1,y1,...,x4,y4[,score]' results; Total-Text / CTW1500 text files with x,y,...,x,y polygons and an
optional transcription. A ground-truth file without a result file counts as an image with no detections;
a result file without ground truth is an error.

Conformance: the protocols follow the official scripts (RRC ICDAR 2015 / the original DBNet IoU protocol,
the Total-Text Deteval.py, the RRC ICDAR 2013 DetEval, the TIoU-metric script; see each class docstring
for the reproduced details). The official example submissions could not be downloaded in this
environment, so equality with the official numbers on them is NOT verified here; the tests pin the
protocols on hand-built cases instead. (The Total-Text script reads detections as y,x pairs from .mat
tooling; this scorer reads x,y.)
"""

import argparse
import os
import sys
import zipfile

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.cli import run_main
from concern.errors import UserError
from concern.protocols import PROTOCOL_NAMES, make_protocol
from concern.result_files import parse_gt_text, parse_result_text, write_json_results

PREFIXES = ('poly_gt_', 'gt_', 'res_')


def sample_key(name):
    """'gt_img_12.txt' / 'res_img_12.txt' -> 'img_12'."""
    stem = os.path.splitext(os.path.basename(name))[0]
    for prefix in PREFIXES:
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


def load_texts(path, flag='--gt'):
    """Folder or zip of .txt files -> {sample key: file text}."""
    texts = {}
    if os.path.isdir(path):
        names = [(n, os.path.join(path, n)) for n in sorted(os.listdir(path)) if n.endswith('.txt')]
        for name, full in names:
            with open(full, encoding='utf-8-sig') as handle:
                texts[sample_key(name)] = (full, handle.read())
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                if name.endswith('.txt'):
                    texts[sample_key(name)] = (f'{path}:{name}', archive.read(name).decode('utf-8-sig'))
    else:
        raise UserError(f'{flag} {path} is not a folder or a zip file of .txt files; check the path.')
    return texts


def score(gt_path, det_path, protocol='iou', ignore_texts=('###',), score_thresh=None, protocol_args=None):
    """Evaluate; returns (combined metrics dict, {sample key: per-image result})."""
    evaluator = make_protocol(protocol, **(protocol_args or {}))
    gts, dets = load_texts(gt_path, '--gt'), load_texts(det_path, '--det')
    unknown = sorted(set(dets) - set(gts))
    if unknown:
        raise UserError(
            f'{det_path}: result files without ground truth in {gt_path}: {unknown[:5]} '
            f"(samples are paired by name without 'gt_'/'poly_gt_'/'res_' and the extension)."
        )
    per_image = {}
    for key in sorted(gts):
        where, text = gts[key]
        gt = parse_gt_text(text, where, ignore_texts)
        pred = []
        if key in dets:
            det_where, det_text = dets[key]
            polygons, scores = parse_result_text(det_text, det_where)
            pred = [
                {'points': p}
                for p, s in zip(polygons, scores)
                if score_thresh is None or s is None or s >= score_thresh
            ]
        per_image[key] = evaluator.evaluate_image(gt, pred)
    return evaluator.combine_results(list(per_image.values())), per_image


def main(argv=None):
    parser = argparse.ArgumentParser(description='Score text-detection result files offline.')
    parser.add_argument('--gt', required=True, help='folder or zip of ground-truth .txt files')
    parser.add_argument('--det', required=True, help='folder or zip of result .txt files')
    parser.add_argument('--protocol', default='iou', choices=PROTOCOL_NAMES)
    parser.add_argument(
        '--ignore_text',
        action='append',
        default=None,
        help="transcription marking don't care (repeatable; default '###')",
    )
    parser.add_argument(
        '--score_thresh', type=float, default=None, help='drop detections whose score column is below it'
    )
    parser.add_argument('--json', default=None, help='write metrics and per-image results here')
    args = parser.parse_args(argv)
    combined, per_image = score(
        args.gt, args.det, args.protocol, tuple(args.ignore_text or ('###',)), args.score_thresh
    )
    if combined['empty_gt']:
        print('No care ground truth in the evaluated files: recall is reported as 0.')
    print(
        f'protocol {args.protocol}: images {combined["num_images"]}  gt {combined["num_gt"]}  det {combined["num_det"]}'
    )
    print(
        f'precision {combined["precision"]:.4f}  recall {combined["recall"]:.4f}  fmeasure {combined["fmeasure"]:.4f}'
    )
    if args.json:
        write_json_results(args.json, {'protocol': args.protocol, 'metrics': combined, 'per_image': per_image})
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
