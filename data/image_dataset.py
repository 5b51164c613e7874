"""ImageDataset: images and ground truth in the original DB layout, read by a chosen format reader."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch.utils.data

from concern.errors import UserError
from concern.registry import lookup

from .image_io import read_image
from .readers import (
    AnnotationError,
    SynthTextGroundTruth,
    read_ctw1500,
    read_db_txt,
    read_gnhk,
    read_icdar2015,
    read_td500,
    read_totaltext_legacy,
    read_totaltext_mat,
)

__all__ = ['DatasetError', 'ImageDataset', 'READERS', 'gt_relative_path']

logger = logging.getLogger(__name__)


# reader name -> (function(path, **reader_args) -> (lines, problems), gt name for train, gt name for test)
# A gt name is a format string over the list entry's file name: {name} (with extension), {stem} (without),
# {first_stem} (up to the first dot, the original's ICDAR 2015 test rule).
READERS = {
    'db': (read_db_txt, '{name}.txt', '{name}.txt'),
    'icdar2015': (read_icdar2015, '{name}.txt', 'gt_{stem}.txt'),
    'totaltext': (read_db_txt, '{name}.txt', '{name}.txt'),
    'totaltext_mat': (read_totaltext_mat, 'poly_gt_{stem}.mat', 'poly_gt_{stem}.mat'),
    'totaltext_legacy': (read_totaltext_legacy, 'poly_gt_{stem}.txt', 'poly_gt_{stem}.txt'),
    'ctw1500': (read_ctw1500, '{stem}.xml', '{stem}.txt'),
    'td500': (read_td500, '{stem}.gt', '{stem}.gt'),
    'gnhk': (read_gnhk, '{stem}.json', '{stem}.json'),
}
ON_ERROR = ('raise', 'skip')


class DatasetError(UserError, ValueError):
    """A dataset folder or data list that cannot be used (missing, empty, an entry outside its folder); the
    message names it."""


def gt_relative_path(entry: str, pattern: str) -> str:
    """The ground-truth path (relative to the gts folder) of list entry ``entry`` under gt-name ``pattern``."""
    folder, name = os.path.split(entry)
    stem = os.path.splitext(name)[0]
    return os.path.join(folder, pattern.format(name=name, stem=stem, first_stem=name.split('.')[0]))


def original_gt_pattern(is_training: bool, data_list: str) -> str:
    """The original's gt naming: train ``<name>.txt``; test ``<name>.txt`` for lists whose path names
    'TD500' or 'total_text', else ICDAR 2015's ``gt_<stem>.txt`` (stem up to the first dot)."""
    if is_training or 'TD500' in data_list or 'total_text' in data_list:
        return '{name}.txt'
    return 'gt_{first_stem}.txt'


class ImageDataset(torch.utils.data.Dataset):
    """Text-detection samples from one or more datasets in the DB layout.

    Layout per dataset ``d = data_dir[i]``: ``d/{train,test}_images/<entry>`` and ``d/{train,test}_gts/<gt>``,
    the entries listed one per line in ``data_list[i]``. ``is_training`` (None: the original's rule, ``'train'``
    in ``data_list[0]``) picks the train_ or test_ folders.

    Args:
        data_dir, data_list, processes: as in the original YAML; processes are callables dict -> dict
            applied in order.
        reader: 'auto' (the original: DB txt lines, first 8 numbers when the dataset folder names 'icdar',
            label '1' = don't care when the first data folder's path contains 'TD' (MSRA-TD500), the original's
            gt naming), 'db', 'icdar2015', 'totaltext' (DB-converted
            txt), 'totaltext_mat', 'totaltext_legacy', 'ctw1500', 'td500', 'gnhk' or 'synthtext' (then
            ``data_list[i]`` is SynthText's gt.mat and images are ``data_dir[i]/<imname>``).
        reader_args: keyword arguments for the reader (e.g. ``{'level': 'line', 'keep_special': True}`` for gnhk).
        gt_name: gt file name pattern (``{name}``, ``{stem}``), default per reader.
        on_error: 'raise' (a clear error naming the file / line) or 'skip' (one warning per file; a bad
            sample is counted in ``num_skipped``, a bad line is dropped and counted in ``num_bad_lines``). In
            a training set a bad sample is replaced by the next good one; in a test set it is left out of the
            evaluation instead (replacing it would count another image twice): ``dataset[i]`` is then
            ``{'dropped': image path, 'data_id': i}``, which ``ICDARCollectFN`` removes from its batch.
            Counters are per process (each DataLoader worker has its own);
            so that the training loop can count skips across workers, every sample returned under 'skip'
            carries ``'skipped'``: how many bad samples were passed over to produce it (usually 0).
            A region with a NaN or infinite coordinate is a bad line (never a NaN target). A degenerate region
            (1 or 2 points, or no area) is not a bad line: as in the original it is read as a don't-care region,
            under either setting, and counted in ``num_degenerate_lines`` (logged once per file).
        max_pixels: images larger than this (from the header) are refused; None disables the guard.

    Returns (``dataset[i]``) the sample dict ``{'image': HxWx3 float32 BGR (0..255, as the original reads it),
    'lines': [{'poly': [[x, y], ...],
    'text': str}], 'filename': image path, 'data_id': i, 'is_training': bool}`` after ``processes``.
    """

    def __init__(
        self,
        data_dir=[],
        data_list=[],
        processes=[],
        reader='auto',
        reader_args=None,
        gt_name=None,
        on_error='raise',
        max_pixels=2**28,
        is_training=None,
    ):
        if isinstance(data_dir, str) or isinstance(data_list, str):
            raise ValueError('ImageDataset: data_dir and data_list must be lists (one entry per dataset).')
        if not data_dir or len(data_dir) != len(data_list):
            raise ValueError(
                f'ImageDataset: data_dir ({len(data_dir)} entries) and data_list ({len(data_list)} '
                f'entries) must be non-empty lists of the same length.'
            )
        lookup({'auto': None, 'synthtext': None, **READERS}, reader, 'reader', 'ImageDataset reader')
        if on_error not in ON_ERROR:
            raise ValueError(f"ImageDataset: on_error must be 'raise' or 'skip', got {on_error!r}.")
        self.data_dir = list(data_dir)
        self.data_list = list(data_list)
        self.processes = list(processes or [])
        self.reader = reader
        self.reader_args = dict(reader_args or {})
        self.gt_name = gt_name
        self.on_error = on_error
        self.max_pixels = max_pixels
        self.is_training = ('train' in self.data_list[0]) if is_training is None else bool(is_training)
        self.num_skipped = 0
        self.num_bad_lines = 0
        self.num_degenerate_lines = 0
        self._noted_degenerate = set()
        self.skipped_files = set()
        self._warned_gts = set()
        self.image_paths, self.gt_sources = [], []
        for root, list_path in zip(self.data_dir, self.data_list):
            self._add_dataset(root, list_path)
        self.num_samples = len(self.image_paths)
        if self.num_samples == 0:
            raise DatasetError(
                f'ImageDataset: the data lists {self.data_list} name no images; add image names '
                f'(one per line) or fix data_list.'
            )

    # ----- building the index
    def _add_dataset(self, root: str, list_path: str):
        if self.reader == 'synthtext':
            ground_truth = SynthTextGroundTruth(list_path)
            for k, name in enumerate(ground_truth.names):
                self.image_paths.append(self._inside(root, name, list_path, k + 1))
                self.gt_sources.append((ground_truth, k, root))
            return
        split = 'train' if self.is_training else 'test'
        images_dir, gts_dir = os.path.join(root, f'{split}_images'), os.path.join(root, f'{split}_gts')
        for folder in (images_dir, gts_dir):
            if not os.path.isdir(folder):
                raise DatasetError(
                    f'ImageDataset: the folder {folder} does not exist; data_dir {root} must hold '
                    f'{split}_images/ and {split}_gts/ (check data_dir and is_training).'
                )
        if self.gt_name is not None:
            pattern = self.gt_name
        elif self.reader == 'auto':
            pattern = original_gt_pattern(self.is_training, list_path)
        else:
            pattern = READERS[self.reader][1 if self.is_training else 2]
        try:
            with open(list_path, encoding='utf-8-sig') as handle:
                entries = handle.read().splitlines()
        except OSError as error:
            raise DatasetError(
                f'ImageDataset: cannot read data list {list_path} ({error.strerror}); check data_list.'
            ) from error
        for line_no, entry in enumerate(entries, start=1):
            entry = entry.strip()
            if not entry:
                continue
            image_path = self._inside(images_dir, entry, list_path, line_no)
            gt_entry = gt_relative_path(entry, pattern)
            self.image_paths.append(image_path)
            self.gt_sources.append((self._inside(gts_dir, gt_entry, list_path, line_no), None, root))

    @staticmethod
    def _inside(folder: str, entry: str, list_path: str, line_no: int) -> str:
        path = os.path.join(folder, entry)
        real_folder = os.path.realpath(folder)
        if os.path.isabs(entry) or os.path.commonpath([real_folder, os.path.realpath(path)]) != real_folder:
            raise DatasetError(
                f'{list_path}:{line_no}: entry {entry!r} points outside {folder}; '
                f'list entries must be paths relative to the images folder.'
            )
        return path

    # ----- reading one sample
    def read_annotation(self, index: int) -> tuple[list, list]:
        """``(lines, problems)`` of sample ``index``, as the configured reader returns them."""
        source, key, root = self.gt_sources[index]
        if self.reader == 'synthtext':
            return source.read(key)
        # the original's rule: the label '1' is MSRA-TD500's difficult flag (don't care) only where the first
        # data folder's path contains 'TD'; on Total-Text, GNHK and the rest a word '1' is a word
        td500 = 'TD' in self.data_dir[0]
        if self.reader == 'auto':
            first_8 = 'icdar' in root
            if first_8:
                return read_icdar2015(source)
            return read_db_txt(source, one_is_dont_care=td500)
        if self.reader == 'db':
            return read_db_txt(source, **{'one_is_dont_care': td500, **self.reader_args})
        return READERS[self.reader][0](source, **self.reader_args)

    def _finite_lines(self, lines: list, index: int) -> tuple[list, list]:
        """``(lines whose coordinates are all finite, one AnnotationError per region with a NaN / inf)``."""
        finite, problems = [], []
        for number, line in enumerate(lines, start=1):
            if np.isfinite(np.asarray(line['poly'], dtype=np.float64)).all():
                finite.append(line)
                continue
            source = self.gt_sources[index][0]
            where = source if isinstance(source, str) else f'{self.image_paths[index]} (ground truth)'
            problems.append(
                AnnotationError(
                    where,
                    None,
                    f'region {number} ({line["text"]!r}) has a NaN or infinite coordinate; fix or remove it',
                )
            )
        return finite, problems

    def load(self, index: int) -> dict:
        """The raw sample dict of ``index`` (before processes); raises ImageReadError / AnnotationError."""
        lines, problems = self.read_annotation(index)
        lines, non_finite = self._finite_lines(lines, index)
        problems = list(problems) + non_finite
        if problems:
            if self.on_error == 'raise':
                raise problems[0]
            gt = problems[0].path
            self.num_bad_lines += len(problems)
            if gt not in self._warned_gts:
                self._warned_gts.add(gt)
                logger.warning(
                    'skipping %d bad annotation record(s): %s', len(problems), '; '.join(str(p) for p in problems[:5])
                )
        self._note_degenerate(lines, index)
        image = read_image(self.image_paths[index], max_pixels=self.max_pixels)
        return {
            'image': image,
            'lines': lines,
            'filename': self.image_paths[index],
            'data_id': index,
            'is_training': self.is_training,
        }

    def _note_degenerate(self, lines: list, index: int) -> None:
        """Counts the degenerate regions (fewer than 3 points or no area: don't care, as in the original) in
        ``num_degenerate_lines`` and logs them once per ground-truth file."""
        notes = [line['degenerate'] for line in lines if 'degenerate' in line]
        if not notes:
            return
        self.num_degenerate_lines += len(notes)
        if index not in self._noted_degenerate:
            self._noted_degenerate.add(index)
            logger.info("%d degenerate region(s) read as don't care: %s", len(notes), '; '.join(notes[:5]))

    def _process(self, index: int) -> dict:
        data = self.load(index)
        for process in self.processes:
            data = process(data)
        return data

    def __getitem__(self, index: int) -> dict:
        index = index % self.num_samples
        if self.on_error == 'raise':
            return self._process(index)
        if not self.is_training:
            try:
                return self._process(index)
            except Exception as error:  # on_error='skip' on a test set: the image is left out, not replaced
                self._note_skipped(index, error)
                return {'dropped': self.image_paths[index], 'data_id': index}
        for attempt in range(self.num_samples):
            candidate = (index + attempt) % self.num_samples
            path = self.image_paths[candidate]
            if path in self.skipped_files:
                continue
            try:
                data = self._process(candidate)
            except Exception as error:  # on_error='skip': any failure of this sample skips it, with a warning
                self._note_skipped(candidate, error)
                continue
            data['skipped'] = attempt  # the candidates before this one were bad
            return data
        raise RuntimeError(
            f'ImageDataset: every sample failed to load (last data list {self.data_list[-1]}); '
            f'run tools/check_dataset.py on it.'
        )

    def _note_skipped(self, index: int, error: Exception) -> None:
        path = self.image_paths[index]
        self.skipped_files.add(path)
        self.num_skipped += 1
        logger.warning('skipping sample %d (%s): %s: %s', index, path, type(error).__name__, error)

    def __len__(self) -> int:
        return self.num_samples
