"""Split a dataset's training list into a fixed train / validation pair of list files.

    python -m tools.split_dataset datasets/icdar2015 --val 100 --seed 0
    python -m tools.split_dataset /data/icdar2015 --val 100 --seed 0 --out workspace/splits/icdar2015

Reads ``DATASET_DIR/train_list.txt`` (the original DB layout: ``train_images/``, ``train_gts/``) and writes
``split_train_list.txt`` and ``split_val_list.txt`` to ``--out`` (default: the dataset folder; give ``--out``
when the dataset folder is read-only). The lists name images relative to ``DATASET_DIR/train_images``, like
the original list, so an experiment keeps ``data_dir: [DATASET_DIR]`` and points ``data_list`` at the new
files; the validation set reads from the train_ folders, so its ImageDataset needs ``is_training: True``
(see docs/real_data.md).

The split is a pure function of the entries and the seed: entries are ordered by the SHA-256 of
``"<seed>:<entry>"`` and the first ``--val`` go to validation, so the same seed gives the same split on any
machine and for any order of the source list. Existing list files that differ are kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.cli import run_main
from concern.errors import UserError

__all__ = ['SplitError', 'split_entries', 'read_entries', 'write_split']

TRAIN_NAME, VAL_NAME = 'split_train_list.txt', 'split_val_list.txt'


class SplitError(UserError):
    """A dataset folder, list file or output folder that the split cannot use; the message names it."""


def split_entries(entries, num_val: int, seed: int) -> tuple[list, list]:
    """``(train, val)``: sorted lists; ``val`` holds the ``num_val`` entries with the smallest
    SHA-256 of ``"<seed>:<entry>"``. Raises SplitError when ``num_val`` leaves no training entry."""
    unique = sorted(set(entries))
    if not 0 < num_val < len(unique):
        raise SplitError(
            f'--val {num_val} must be between 1 and {len(unique) - 1} (the list has {len(unique)} distinct images).'
        )
    ranked = sorted(unique, key=lambda entry: hashlib.sha256(f'{seed}:{entry}'.encode()).hexdigest())
    val = set(ranked[:num_val])
    return [entry for entry in unique if entry not in val], sorted(val)


def read_entries(list_path: str, images_dir: str) -> list:
    """The non-empty entries of ``list_path``; raises SplitError if it is unreadable or names a missing image."""
    try:
        with open(list_path, encoding='utf-8-sig') as handle:
            entries = [line.strip() for line in handle.read().splitlines() if line.strip()]
    except OSError as error:
        raise SplitError(
            f'cannot read the list {list_path} ({error.strerror}); give the dataset folder in the '
            f'DB layout (train_images/, train_gts/, train_list.txt) or --list.'
        ) from error
    for entry in entries:
        if not os.path.isfile(os.path.join(images_dir, entry)):
            raise SplitError(
                f'{list_path}: entry {entry!r} has no image in {images_dir}; fix the list or the dataset folder.'
            )
    return entries


def write_split(train: list, val: list, out: str, force: bool = False) -> tuple[str, str, bool]:
    """Write the two lists to ``out``; returns ``(train path, val path, written)`` (``written`` False when
    identical files were already there). Raises SplitError if different files exist and not ``force``."""
    paths = (os.path.join(out, TRAIN_NAME), os.path.join(out, VAL_NAME))
    texts = (''.join(entry + '\n' for entry in train), ''.join(entry + '\n' for entry in val))
    existing = []
    for path in paths:
        if os.path.exists(path):
            with open(path, encoding='utf-8') as handle:
                existing.append(handle.read())
    if existing == list(texts):
        return paths[0], paths[1], False
    if existing and not force:
        raise SplitError(
            f'{out} already holds {TRAIN_NAME} / {VAL_NAME} with a different split; pass --force to '
            f'replace them or choose another --out.'
        )
    if os.path.isdir(out) and not os.stat(out).st_mode & 0o222:  # no write bit: read-only even for root
        raise SplitError(f'{out} is read-only; pass --out with a writable folder for the split lists.')
    try:
        os.makedirs(out, exist_ok=True)
        for path, text in zip(paths, texts):
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(text)
    except OSError as error:
        raise SplitError(
            f'cannot write the split lists into {out} ({error.strerror}); pass --out with a writable folder.'
        ) from error
    return paths[0], paths[1], True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset_dir', help='dataset folder in the DB layout (train_images/, train_gts/)')
    parser.add_argument('--val', type=int, default=100, help='number of validation images (default 100)')
    parser.add_argument('--seed', type=int, default=0, help='split seed (default 0)')
    parser.add_argument('--list', help='list to split (default DATASET_DIR/train_list.txt)')
    parser.add_argument('--out', help='folder for the list files (default: DATASET_DIR)')
    parser.add_argument('--force', action='store_true', help='replace existing split lists that differ')
    args = parser.parse_args(argv)
    if not os.path.isdir(args.dataset_dir):
        raise SplitError(
            f'dataset folder {args.dataset_dir} does not exist; give the folder that holds '
            f'train_images/ and train_list.txt.'
        )
    images_dir = os.path.join(args.dataset_dir, 'train_images')
    entries = read_entries(args.list or os.path.join(args.dataset_dir, 'train_list.txt'), images_dir)
    train, val = split_entries(entries, args.val, args.seed)
    train_path, val_path, written = write_split(train, val, args.out or args.dataset_dir, args.force)
    state = 'wrote' if written else 'unchanged (identical lists already there):'
    print(f'{state} {train_path} ({len(train)} images) and {val_path} ({len(val)} images), seed {args.seed}')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
