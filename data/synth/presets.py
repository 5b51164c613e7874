"""The generator's presets and inputs: the difficulty presets, the photo-like ingredients and their off values, the
Hershey faces, the word list, the photo sources (scikit-image's photos or files) and the TrueType fonts found on the
machine."""

from __future__ import annotations

import os

import cv2

__all__ = ['DIFFICULTIES', 'INGREDIENTS_OFF', 'BACKGROUNDS', 'resolve_photo_sources', 'find_truetype_fonts']

HERSHEY_PRINTED = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)

HERSHEY_SCRIPT = (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)

FONT_DIRS = (
    '/usr/share/fonts',
    '/usr/local/share/fonts',
    '~/.fonts',
    '~/.local/share/fonts',
    '/Library/Fonts',
    '/System/Library/Fonts',
    'C:/Windows/Fonts',
)

FONT_EXCLUDE = ('emoji', 'symbol', 'wingding', 'dingbat', 'math', 'cursor', 'braille', 'icon', 'awesome')

WORDS = (
    'the of and to in is you that it he was for on are as with his they at be this have from or one had by word '
    'but not what all were we when your can said there use an each which she do how their if will up other about '
    'out many then them these so some her would make like him into time has look two more write go see number no '
    'way could people my than first water been call who oil its now find long down day did get come made may part '
    'over new sound take only little work know place year live me back give most very after thing our just name '
    'good sentence man think say great where help through much before line right too mean old any same tell boy '
    'follow came want show also around form three small set put end does another well large must big even such '
    'because turn here why ask went men read need land different home us move try kind hand picture again change '
    'off play spell air away animal house point page letter mother answer found study still learn should America '
    'world STOP EXIT OPEN Sale Coffee Hotel Street Avenue Menu Total Price Notes Meeting Monday Friday London Paris '
    'DBNet Text Detection Bank Market Station Parking Library Office Garden Museum Theatre Pharmacy Bakery'
).split()

CHARSET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789'

HERSHEY_EXTRA = (
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
    cv2.FONT_HERSHEY_COMPLEX | cv2.FONT_ITALIC,
    cv2.FONT_HERSHEY_TRIPLEX | cv2.FONT_ITALIC,
)

# Photos shipped inside scikit-image (no download), chosen without legible text in them.
SKIMAGE_PHOTOS = (
    'chelsea',
    'coffee',
    'brick',
    'grass',
    'gravel',
    'camera',
    'moon',
    'hubble_deep_field',
    'immunohistochemistry',
    'retina',
    'cell',
    'colorwheel',
)

# Image files a folder of background photos may hold (options["photos"]).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')

BACKGROUNDS = ('paper', 'ruled', 'gradient', 'cluttered', 'photo', 'texture', 'facade', 'packaging')

# The photo-like ingredients, each off (0 / False) in the original presets, so that their images stay the
# same bit for bit: every ingredient draws from the random stream only when it is switched on.
#   surface_prob: share of images whose words lie on a surface (sign, poster, page) warped in perspective
#       into the scene, with surface_perspective the corner jitter (fraction of the image side);
#   multiline_prob: chance that a word placement becomes a block of 2-4 left-aligned lines;
#   panel_prob: chance that a single word gets a sign plate (a filled, bordered patch) under it;
#   lighting: strength of a smooth gain field (gradient + spot) and colour cast; shadow_prob: a soft shadow;
#   defocus_prob / motion_blur_prob: disk and line blurs; jpeg_prob: re-encoding at quality 25-80;
#   lowres_prob: the image shrunk by 1.5-3x and enlarged back (a camera's low resolution: soft, blocky strokes);
#   word_space: (low, high) ink gap between the words of a multi-line block, in x-heights (real text: about
#       0.3-0.8), with blocks of 1-4 lines; None keeps the wide gap of every other placement (about 1.1 x-heights
#       plus 4 px) and blocks of 2-4 lines;
#   block_x_height: (low, high) x-height range of those blocks; None: the lower half of x_height (small print);
#   clutter: (min, max) unlabelled non-text objects that real scenes are full of and a text detector must learn to
#       ignore: pictograms (arrows, no-entry signs, figures), patterned patches (checkers, stripes, dot grids),
#       shelves of small coloured boxes and logos; (0, 0) draws none;
#   extra_fonts: Hershey plain, small and italic faces besides the printed and script ones;
#   photos: the photos of the 'photo' background: scikit-image photo names, image files and folders of images
#       (your own photos without legible text, e.g. SynthText's background set), see resolve_photo_sources.
INGREDIENTS_OFF = dict(
    surface_prob=0.0,
    surface_perspective=0.0,
    multiline_prob=0.0,
    panel_prob=0.0,
    lighting=0.0,
    shadow_prob=0.0,
    defocus_prob=0.0,
    motion_blur_prob=0.0,
    jpeg_prob=0.0,
    lowres_prob=0.0,
    word_space=None,
    block_x_height=None,
    clutter=(0, 0),
    extra_fonts=False,
    photos=SKIMAGE_PHOTOS,
)

# Difficulty presets: every argument of the generator, by name. 'easy' is the quick start's (learnable in minutes);
# 'photo' imitates photographs of scenes and documents (scene text pre-training).
DIFFICULTIES = {
    'easy': dict(
        num_words=(2, 6),
        x_height=(14, 26),
        rotation=8.0,
        perspective=0.0,
        curve_prob=0.0,
        curve_amount=0.0,
        handwriting_prob=0.2,
        dont_care_prob=0.0,
        distractors=(0, 2),
        backgrounds=('paper', 'ruled', 'gradient'),
        min_contrast=110,
        blur_prob=0.1,
        noise=3.0,
        **INGREDIENTS_OFF,
    ),
    'medium': dict(
        num_words=(3, 9),
        x_height=(10, 32),
        rotation=25.0,
        perspective=0.08,
        curve_prob=0.2,
        curve_amount=0.6,
        handwriting_prob=0.35,
        dont_care_prob=0.08,
        distractors=(1, 5),
        backgrounds=('paper', 'ruled', 'gradient', 'cluttered'),
        min_contrast=80,
        blur_prob=0.2,
        noise=5.0,
        **INGREDIENTS_OFF,
    ),
    'hard': dict(
        num_words=(4, 14),
        x_height=(8, 40),
        rotation=60.0,
        perspective=0.15,
        curve_prob=0.35,
        curve_amount=1.0,
        handwriting_prob=0.5,
        dont_care_prob=0.15,
        distractors=(3, 10),
        backgrounds=('paper', 'ruled', 'gradient', 'cluttered'),
        min_contrast=60,
        blur_prob=0.3,
        noise=8.0,
        **INGREDIENTS_OFF,
    ),
    'photo': dict(
        num_words=(3, 12),
        x_height=(6, 36),
        rotation=20.0,
        perspective=0.1,
        curve_prob=0.08,
        curve_amount=0.5,
        handwriting_prob=0.1,
        dont_care_prob=0.15,
        distractors=(2, 8),
        backgrounds=('photo', 'photo', 'texture', 'facade', 'packaging', 'cluttered', 'paper', 'gradient'),
        min_contrast=45,
        blur_prob=0.15,
        noise=4.0,
        surface_prob=0.5,
        surface_perspective=0.2,
        multiline_prob=0.2,
        panel_prob=0.35,
        lighting=0.35,
        shadow_prob=0.3,
        defocus_prob=0.2,
        motion_blur_prob=0.15,
        jpeg_prob=0.5,
        lowres_prob=0.0,
        word_space=None,
        block_x_height=None,
        clutter=(0, 0),
        extra_fonts=True,
        photos=SKIMAGE_PHOTOS,
    ),
}


def resolve_photo_sources(entries) -> list:
    """The photos of the 'photo' background: ``('skimage', name)`` for a scikit-image photo name (a bare word such
    as ``'coffee'``, unless it is a file or folder here) and ``('file', path)`` for an image file, a folder
    standing for its image files (every ``IMAGE_EXTENSIONS`` file under it, sorted by path so that a sample
    stays a function of its seed and index)."""
    sources = []
    for entry in entries:
        entry = str(entry)
        bare_word = os.sep not in entry and '/' not in entry and '.' not in entry
        if bare_word and (entry in SKIMAGE_PHOTOS or not os.path.exists(entry)):
            sources.append(('skimage', entry))  # checked when first used: importing scikit-image is slow
        elif os.path.isdir(entry):
            found = sorted(
                os.path.join(root, name)
                for root, _, files in os.walk(entry)
                for name in files
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise ValueError(
                    f'SyntheticTextDataset: the folder {entry!r} in options["photos"] holds no image '
                    f'({", ".join(IMAGE_EXTENSIONS)}); put background photos in it or remove it from the list.'
                )
            sources += [('file', path) for path in found]
        elif os.path.isfile(entry):
            sources.append(('file', entry))
        else:
            raise ValueError(
                f'SyntheticTextDataset: options["photos"] names {entry!r}, which is neither a file nor a folder; '
                f'give an image file, a folder of images or a scikit-image photo name ({", ".join(SKIMAGE_PHOTOS)}).'
            )
    return sources


def find_truetype_fonts(dirs=FONT_DIRS) -> list:
    """Sorted paths of the .ttf / .otf fonts under ``dirs`` (symbol, emoji and math fonts left out)."""
    found = []
    for folder in dirs:
        folder = os.path.expanduser(folder)
        for root, _, files in os.walk(folder):
            for name in files:
                lower = name.lower()
                if lower.endswith(('.ttf', '.otf')) and not any(word in lower for word in FONT_EXCLUDE):
                    found.append(os.path.join(root, name))
    return sorted(set(found))
