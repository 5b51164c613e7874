"""Convert an official dataset release to the DB layout (``{split}_images``, ``{split}_gts``, ``{split}_list.txt``).

    python -m tools.convert_dataset icdar2015 --images ch4_training_images \\
        --gts ch4_training_localization_transcription_gt --out datasets/icdar2015 --split train
    python -m tools.convert_dataset totaltext_mat --images Images/Test --gts gt/Test --out datasets/total_text \\
        --split test
    python -m tools.convert_dataset gnhk --images train --gts train --out datasets/gnhk --split train --level word
    python -m tools.convert_dataset synthtext --images SynthText --gts SynthText/gt.mat --out datasets/synthtext

Ground truth is written as ``x1,y1,...,xn,yn,text`` lines named by the original's rule (train
``<image name>.txt``; test ``gt_<stem>.txt``, or ``<image name>.txt`` when the output path names 'TD500' or
'total_text'), so ``ImageDataset`` with its default reader reads the result. Records that cannot be parsed
are reported and left out; images without ground truth are reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.cli import run_main
from concern.errors import UserError
from data.image_dataset import READERS, gt_relative_path, original_gt_pattern
from data.readers import AnnotationError, SynthTextGroundTruth, format_db_line

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')
# ImageDataset's readers name ground truth as the official releases do, except ICDAR 2015's training set
# (official gt_img_N.txt, the DB folder's img_N.jpg.txt).
FORMATS = ('icdar2015', 'totaltext_mat', 'totaltext_legacy', 'ctw1500', 'td500', 'gnhk')
OFFICIAL_TRAIN_NAMES = {'icdar2015': 'gt_{stem}.txt'}


def official_samples(fmt: str, images: str, gts: str, split: str, gt_name: str | None, reader_args: dict):
    """Yield ``(relative image name, image path, lines, problems)`` for an official release."""
    if fmt == 'synthtext':
        truth = SynthTextGroundTruth(gts)
        for index, name in enumerate(truth.names):
            yield (name, os.path.join(images, name)) + truth.read(index)
        return
    reader, train_name, test_name = READERS[fmt]
    db_train_name = train_name
    train_name = OFFICIAL_TRAIN_NAMES.get(fmt, train_name)
    pattern = gt_name or (train_name if split == 'train' else test_name)
    names = [name for name in sorted(os.listdir(images)) if name.lower().endswith(IMAGE_EXTENSIONS)]
    found = [name for name in names if os.path.exists(os.path.join(gts, gt_relative_path(name, pattern)))]
    if (
        names
        and not found
        and pattern != db_train_name
        and not gt_name
        and all(os.path.exists(os.path.join(gts, gt_relative_path(name, db_train_name))) for name in names)
    ):
        raise UserError(
            f'--gts {gts}: the ground truth is already named as in the DB layout '
            f'({gt_relative_path(names[0], db_train_name)}), not as the official {fmt} release '
            f'({gt_relative_path(names[0], pattern)}); it needs no conversion: copy the folders '
            f"and write {split}_list.txt, or pass --gt-name '{db_train_name}'."
        )
    for name in names:
        gt_path = os.path.join(gts, gt_relative_path(name, pattern))
        if not os.path.exists(gt_path):
            yield name, os.path.join(images, name), None, [AnnotationError(gt_path, None, 'ground truth missing')]
            continue
        yield (name, os.path.join(images, name)) + reader(gt_path, **reader_args)


def convert(
    fmt: str, images: str, gts: str, out: str, split: str, gt_name: str | None = None, reader_args: dict | None = None
) -> dict:
    """Convert one split; returns counts ``{'images', 'lines', 'problems', 'missing'}`` and prints problems."""
    list_path = os.path.join(out, f'{split}_list.txt')
    pattern = original_gt_pattern(split == 'train', list_path)
    counts = {'images': 0, 'lines': 0, 'problems': 0, 'missing': 0}
    names = []
    for name, image_path, lines, problems in official_samples(fmt, images, gts, split, gt_name, reader_args or {}):
        for problem in problems:
            print(f'warning: {problem}', file=sys.stderr)
        if lines is None:
            counts['missing'] += 1
            continue
        counts['problems'] += len(problems)
        target = os.path.join(out, f'{split}_images', name)
        gt_target = os.path.join(out, f'{split}_gts', gt_relative_path(name, pattern))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.makedirs(os.path.dirname(gt_target), exist_ok=True)
        shutil.copyfile(image_path, target)
        with open(gt_target, 'w', encoding='utf-8') as handle:
            handle.write(''.join(format_db_line(line) + '\n' for line in lines))
        names.append(name)
        counts['images'] += 1
        counts['lines'] += len(lines)
    os.makedirs(out, exist_ok=True)
    with open(list_path, 'w', encoding='utf-8') as handle:
        handle.write(''.join(name + '\n' for name in names))
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('format', choices=sorted(FORMATS) + ['synthtext'])
    parser.add_argument('--images', required=True, help='folder of the official images (SynthText: its root)')
    parser.add_argument('--gts', required=True, help='folder of the official ground truth (SynthText: gt.mat)')
    parser.add_argument('--out', required=True, help='output dataset folder (DB layout)')
    parser.add_argument('--split', choices=('train', 'test'), default='train')
    parser.add_argument('--gt-name', help='official gt file name pattern if it differs ({name}, {stem})')
    parser.add_argument('--level', choices=('word', 'line'), default='word', help='GNHK: word or line targets')
    parser.add_argument('--keep-special', action='store_true', help='GNHK: keep %%math%% %%SC%% %%NA%% as text')
    args = parser.parse_args(argv)
    if not os.path.isdir(args.images):
        raise UserError(f"--images {args.images} is not a folder; give the folder of the official release's images.")
    if not os.path.exists(args.gts):
        raise UserError(
            f"--gts {args.gts} does not exist; give the official release's ground-truth folder (SynthText: its gt.mat)."
        )
    reader_args = {'level': args.level, 'keep_special': args.keep_special} if args.format == 'gnhk' else {}
    counts = convert(args.format, args.images, args.gts, args.out, args.split, args.gt_name, reader_args)
    if counts['images'] == 0:
        raise UserError(
            f'--images {args.images} / --gts {args.gts}: no image could be converted '
            f'({counts["missing"]} without ground truth); check the folders, --split and --gt-name.'
        )
    print(
        f'converted {counts["images"]} images, {counts["lines"]} text regions into {args.out} '
        f'({counts["problems"]} bad records left out, {counts["missing"]} images without ground truth)'
    )
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
