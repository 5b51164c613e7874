"""SynthText's ``gt.mat``: ``imnames`` (1xN), ``wordBB`` (1xN of 2x4xK, or 2x4 for a single word), ``txt``.

``txt`` holds, per image, strings of several words separated by spaces and new lines; their words, in
order, are the transcriptions of the K boxes.
"""

from __future__ import annotations

import numpy as np

from .common import AnnotationError, make_line


class SynthTextGroundTruth:
    """All of SynthText's ground truth, loaded once from ``gt.mat``.

    ``names[i]`` is the i-th image path relative to the SynthText root; ``read(i)`` returns
    ``(lines, problems)`` with one 4-point line per word box.
    """

    def __init__(self, path: str):
        from scipy.io import loadmat

        try:
            content = loadmat(path, variable_names=('imnames', 'wordBB', 'txt'))
        except (OSError, ValueError, TypeError) as error:
            raise AnnotationError(path, None, f'cannot read the SynthText gt.mat ({error})') from error
        missing = [k for k in ('imnames', 'wordBB', 'txt') if k not in content]
        if missing:
            raise AnnotationError(path, None, f'missing variable(s) {missing}; is this SynthText gt.mat?')
        self.path = path
        self.names = [str(np.asarray(n).ravel()[0]) for n in content['imnames'].ravel()]
        self.boxes = list(content['wordBB'].ravel())
        self.texts = list(content['txt'].ravel())
        if not len(self.names) == len(self.boxes) == len(self.texts):
            raise AnnotationError(
                path,
                None,
                f'imnames, wordBB and txt have different lengths '
                f'({len(self.names)}, {len(self.boxes)}, {len(self.texts)})',
            )

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> tuple[list, list]:
        where = f'{self.path} [{self.names[index]}]'
        boxes = np.asarray(self.boxes[index], dtype=np.float64)
        if boxes.ndim == 2:
            boxes = boxes[:, :, None]
        if boxes.ndim != 3 or boxes.shape[:2] != (2, 4):
            raise AnnotationError(where, None, f'wordBB has shape {boxes.shape}; expected 2x4xK or 2x4')
        words = ' '.join(str(s) for s in np.asarray(self.texts[index]).ravel()).split()
        problems = []
        if len(words) != boxes.shape[2]:
            problems.append(
                AnnotationError(
                    where, None, f'{len(words)} words in txt for {boxes.shape[2]} boxes; transcriptions left empty'
                )
            )
            words = [''] * boxes.shape[2]
        lines = []
        for k in range(boxes.shape[2]):
            try:
                lines.append(make_line(boxes[:, :, k].T.tolist(), words[k], where, None))
            except AnnotationError as error:
                problems.append(error)
        return lines, problems
