"""The generator's command line and writers: a dataset in the DB layout, or a few sample images.

python -m data.synth --out datasets/synthetic --num 2000 --seed 0 --split train
python -m data.synth --samples assets/images   # a few demo images
"""

from __future__ import annotations

import argparse
import os

import cv2

from concern.config import ConfigError, parse_override
from data.image_dataset import gt_relative_path, original_gt_pattern
from data.readers import format_db_line

from .dataset import SyntheticTextDataset
from .presets import DIFFICULTIES

__all__ = ['write_db_layout', 'write_samples', 'main']


def write_db_layout(out: str, num: int, seed: int = 0, split: str = 'train', **dataset_args) -> str:
    """Write ``num`` samples in the DB layout under ``out`` (images as JPEG); returns the list file path.

    Ground-truth names follow the original's rule (train ``<name>.txt``, test ``gt_<stem>.txt``) so that
    ImageDataset's default reader reads them back.
    """
    if split not in ('train', 'test'):
        raise ValueError(f"write_db_layout: split must be 'train' or 'test', got {split!r}.")
    dataset = SyntheticTextDataset(num_samples=num, seed=seed, is_training=split == 'train', **dataset_args)
    images_dir, gts_dir = os.path.join(out, f'{split}_images'), os.path.join(out, f'{split}_gts')
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(gts_dir, exist_ok=True)
    list_path = os.path.join(out, f'{split}_list.txt')
    pattern = original_gt_pattern(split == 'train', list_path)
    names = []
    for index in range(num):
        sample = dataset.generate(index)
        name = sample['filename']
        cv2.imwrite(os.path.join(images_dir, name), sample['image'], [cv2.IMWRITE_JPEG_QUALITY, 95])
        with open(os.path.join(gts_dir, gt_relative_path(name, pattern)), 'w', encoding='utf-8') as handle:
            handle.write(''.join(format_db_line(line) + '\n' for line in sample['lines']))
        names.append(name)
    with open(list_path, 'w', encoding='utf-8') as handle:
        handle.write(''.join(name + '\n' for name in names))
    return list_path


def write_samples(
    out: str = 'assets/images',
    num: int = 3,
    seed: int = 2024,
    difficulty: str = 'medium',
    image_size=(320, 480),
    options: dict = None,
) -> list:
    """Write ``num`` demo images (JPEG, no ground truth) to ``out``; returns their paths.

    ``options`` override the ``difficulty`` preset's ingredients, as in :class:`SyntheticTextDataset`.
    """
    os.makedirs(out, exist_ok=True)
    dataset = SyntheticTextDataset(
        num_samples=num, seed=seed, image_size=image_size, difficulty=difficulty, options=options
    )
    paths = []
    for index in range(num):
        path = os.path.join(out, f'synthetic_{index + 1}.jpg')
        cv2.imwrite(path, dataset.generate(index)['image'], [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.synth', description='Write synthetic text images in the DB layout.'
    )
    parser.add_argument('--out', help='output dataset folder')
    parser.add_argument('--num', type=int, default=1000, help='number of images')
    parser.add_argument('--seed', type=int, default=0, help='base seed (use another one for a held-out set)')
    parser.add_argument('--split', choices=('train', 'test'), default='train')
    parser.add_argument('--difficulty', choices=sorted(DIFFICULTIES), default='easy')
    parser.add_argument('--size', type=int, nargs=2, default=(320, 320), metavar=('H', 'W'))
    parser.add_argument('--fonts', choices=('all', 'hershey'), default='all')
    parser.add_argument(
        '--samples', metavar='DIR', help="write 3 demo images ('medium' preset, with any --option) to DIR instead"
    )
    parser.add_argument(
        '--option',
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help='an option of the generator over the --difficulty preset, the value in YAML (repeatable), e.g. '
        '--option extra_fonts=false --option "photos=[/data/backgrounds]"',
    )
    args = parser.parse_args(argv)
    options = {}
    for text in args.option:
        try:
            keys, value = parse_override(text)
        except ConfigError as error:
            parser.error(f'--option {text!r}: write KEY=VALUE, e.g. --option extra_fonts=false ({error})')
        options['.'.join(keys)] = value
    if args.samples:
        for path in write_samples(args.samples, options=options):
            print(path)
        return
    if not args.out:
        parser.error('--out is required (or --samples DIR)')
    list_path = write_db_layout(
        args.out,
        args.num,
        seed=args.seed,
        split=args.split,
        difficulty=args.difficulty,
        image_size=tuple(args.size),
        fonts=args.fonts,
        options=options,
    )
    print(f'wrote {args.num} {args.split} images; list: {list_path}')
