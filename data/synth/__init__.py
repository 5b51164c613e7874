"""SyntheticTextDataset: procedural text images with exact polygons, for the quick start, tests and pre-training.

Every sample is a pure function of ``(seed, index)`` and the font set: printed words in OpenCV's Hershey
fonts and in the TrueType / OpenType fonts found on the machine, handwriting-like words (script fonts,
per-letter jitter, slant, varying stroke width), on paper, ruled-notebook, gradient or cluttered
backgrounds, rotated, perspective-warped and curved (multi-point polygons), with unlabelled distractors and
don't-care words (text ``'###'``: tiny, faint or blurred).

The 'photo' preset imitates photographs of scenes and documents: backgrounds from the photos scikit-image
ships, procedural materials (stone, wood, brick), building façades and packaging; words on sign plates and in
multi-line blocks, on a surface warped in perspective into the scene; lighting gradients, exposure and
shadows; defocus and motion blur, noise and JPEG artefacts; low contrast, small text and more Hershey faces.
Each ingredient is an option (``INGREDIENTS_OFF`` lists them) that can be turned off for ablations; the
ingredients are off in 'easy', 'medium' and 'hard', whose images are unchanged.

Each word is drawn as a mask in its own frame, then mapped into the image through
``curve (u, v) -> (u, v + bend(u))`` followed by a homography; the polygon is the padded ink box of the mask
mapped through the same functions, so the polygons cover the rendered ink.

The parts: ``presets`` (difficulties, ingredients, fonts, photos), ``backgrounds``, ``words`` (rendering),
``layout`` (placing words), ``camera`` (scene and photo effects), ``dataset`` (one sample), ``cli``.

Command line (the DB layout: ``{split}_images/``, ``{split}_gts/``, ``{split}_list.txt``)::

    python -m data.synth --out datasets/synthetic --num 2000 --seed 0 --split train
    python -m data.synth --out datasets/synthetic --num 200 --seed 1 --split test
    python -m data.synth --samples assets/images   # a few demo images
"""

from .cli import main, write_db_layout, write_samples
from .dataset import SyntheticTextDataset
from .presets import DIFFICULTIES, INGREDIENTS_OFF, find_truetype_fonts, resolve_photo_sources

__all__ = [
    'DIFFICULTIES',
    'INGREDIENTS_OFF',
    'SyntheticTextDataset',
    'find_truetype_fonts',
    'resolve_photo_sources',
    'write_db_layout',
    'write_samples',
    'main',
]
