"""Check a prepared dataset: count images, text regions and don't cares; report unreadable files and bad lines.

Degenerate regions (1 or 2 points, or no area, such as the ``221,208,###`` lines of the original's Total-Text
files) are listed apart: they are read as don't-care regions, as the original does, and are not problems.

    python -m tools.check_dataset datasets/icdar2015                     # train_list.txt and test_list.txt
    python -m tools.check_dataset datasets/gnhk --list datasets/gnhk/train_list.txt --reader gnhk
    python -m tools.check_dataset datasets/icdar2015 --header-only        # do not decode images

Exits with status 1 when any problem was found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.cli import run_main
from data.image_dataset import ImageDataset
from data.image_io import ImageReadError, image_size, read_image
from data.readers import DONT_CARE, AnnotationError


def check(
    data_dir: str,
    list_path: str,
    reader: str = 'auto',
    reader_args=None,
    gt_name=None,
    max_pixels=2**28,
    header_only: bool = False,
    out=sys.stdout,
) -> dict:
    """Check one list of a dataset; prints a report to ``out`` and returns the counts."""
    dataset = ImageDataset(
        data_dir=[data_dir],
        data_list=[list_path],
        reader=reader,
        reader_args=reader_args,
        gt_name=gt_name,
        max_pixels=max_pixels,
    )
    counts = Counter(images=len(dataset))
    points = Counter()
    problems, degenerate = [], []
    for index in range(len(dataset)):
        try:
            lines, bad = dataset.read_annotation(index)
        except AnnotationError as error:
            problems.append(f'annotation: {error}')
            counts['unreadable_gts'] += 1
            lines, bad = [], []
        problems += [f'bad line: {error}' for error in bad]
        counts['bad_lines'] += len(bad)
        counts['polygons'] += len(lines)
        counts['dont_care'] += sum(line['text'] == DONT_CARE for line in lines)
        degenerate += [line['degenerate'] for line in lines if 'degenerate' in line]
        points.update(len(line['poly']) for line in lines)
        path = dataset.image_paths[index]
        try:
            if header_only:
                if not os.path.exists(path):
                    raise ImageReadError(f'{path}: image file not found.')
                size = image_size(path)
                if size is not None and size[0] * size[1] > max_pixels:
                    raise ImageReadError(f'{path}: {size[0]}x{size[1]} pixels, over max_pixels ({max_pixels}).')
            else:
                read_image(path, max_pixels=max_pixels)
        except ImageReadError as error:
            problems.append(f'image: {error}')
            counts['unreadable_images'] += 1
    print(
        f'{list_path}: {counts["images"]} images ({"train" if dataset.is_training else "test"} split), '
        f"{counts['polygons']} polygons, {counts['dont_care']} don't care, "
        f'points per polygon {dict(sorted(points.items()))}',
        file=out,
    )
    print(
        f'  unreadable images: {counts["unreadable_images"]}, unreadable gts: {counts["unreadable_gts"]}, '
        f'bad lines: {counts["bad_lines"]}',
        file=out,
    )
    for problem in problems:
        print(f'  {problem}', file=out)
    counts['degenerate'] = len(degenerate)
    print(
        f"  degenerate regions (fewer than 3 points or no area; read as don't care, as the original does, "
        f'not an error): {len(degenerate)}',
        file=out,
    )
    for note in degenerate:
        print(f'  degenerate: {note}', file=out)
    counts['problems'] = len(problems)
    return dict(counts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Check a dataset in the DB layout.')
    parser.add_argument('data_dir')
    parser.add_argument('--list', action='append', help='data list(s); default: train_list.txt and test_list.txt')
    parser.add_argument('--reader', default='auto', help='ImageDataset reader (auto, icdar2015, gnhk, ...)')
    parser.add_argument('--reader-args', default='{}', help='JSON keyword arguments for the reader')
    parser.add_argument('--gt-name', help='gt file name pattern ({name}, {stem})')
    parser.add_argument('--max-pixels', type=int, default=2**28)
    parser.add_argument('--header-only', action='store_true', help='check image headers, do not decode')
    args = parser.parse_args(argv)
    lists = args.list or [
        p for p in (os.path.join(args.data_dir, f'{s}_list.txt') for s in ('train', 'test')) if os.path.exists(p)
    ]
    if not lists:
        parser.error(f'no train_list.txt or test_list.txt in {args.data_dir}; pass --list.')
    total = 0
    for list_path in lists:
        total += check(
            args.data_dir,
            list_path,
            args.reader,
            json.loads(args.reader_args),
            args.gt_name,
            args.max_pixels,
            args.header_only,
        )['problems']
    print('OK' if total == 0 else f'{total} problem(s) found')
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(run_main(main))
