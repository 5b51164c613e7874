"""The training augmentation and the random crop in one warp of the output window (a fast path)."""

import cv2
import numpy as np

from .augment_data import INTERPOLATIONS, AugmentDetectionData
from .data_process import DataProcess
from .random_crop_data import RandomCropData


class AugmentCropData(DataProcess):
    """AugmentDetectionData (training) followed by RandomCropData, computed as one ``cv2.warpAffine``.

    Reads ``image`` (H x W x C; converted to float32 as AugmentDetectionData does) and ``lines`` (list of
    {'poly', 'text'}). Writes what the two processes write: ``image`` (size[1] x size[0] x C float32: the crop
    resized keeping its ratio, top left, zero padded), ``polys`` (list of {'points', 'ignore', 'text'} in the
    output image, those wholly outside dropped), ``scale_w`` / ``scale_h``, ``shape`` ((H, W) of the input),
    ``filename`` and ``is_training`` (True).

    ``augmenter_args`` are AugmentDetectionData's geometric entries (Fliplr, Flipud, Affine, Resize) and
    ``size``, ``max_tries``, ``min_crop_side_ratio`` RandomCropData's. The random draws are those of the two
    processes, made by the same code in the same order (a seeded run draws the same flip, angle, scale and
    crop), and the polygons go through the same arithmetic, so the polygons, hence the label maps, are those of
    the two processes. Only the pixels differ: instead of rotating the whole photo, scaling it (by up to 3x)
    and resizing the crop, the composed affine matrix samples the output window from the input photo once,
    with ``interpolation`` (default linear, the rotation's and the crop resize's; the scale step used cubic).
    """

    def __init__(
        self, augmenter_args=[], size=(640, 640), max_tries=50, min_crop_side_ratio=0.1, interpolation='linear'
    ):
        self.augment = AugmentDetectionData(augmenter_args=augmenter_args)
        for entry, augmenter in zip(augmenter_args, self.augment.augmenter.augmenters):
            if not hasattr(augmenter, 'sample'):
                raise ValueError(
                    f'AugmentCropData: augmenter {entry!r} is not geometric; use AugmentDetectionData and '
                    f'RandomCropData for it.'
                )
        self.crop = RandomCropData(size=size, max_tries=max_tries, min_crop_side_ratio=min_crop_side_ratio)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f'AugmentCropData: interpolation must be one of {", ".join(INTERPOLATIONS)}, not {interpolation!r}.'
            )
        self.interpolation = INTERPOLATIONS[interpolation]

    def process(self, data):
        image = np.asarray(data['image'], dtype=np.float32)  # as AugmentDetectionData: the float image
        polygons = AugmentDetectionData.polygons(data['lines'])
        matrix, shape = np.eye(3), image.shape[:2]
        for augmenter in self.augment.augmenter.augmenters:
            step, shape = augmenter.sample(*shape)
            polygons = augmenter.move(polygons, step)
            matrix = step @ matrix
        data = AugmentDetectionData.annotate(data, polygons, image.shape[:2], is_training=True)
        crop = self.crop.crop_area(shape, RandomCropData.care_polygons(data['polys']))
        scale, w, h = self.crop.fit(crop[2], crop[3])
        matrix = self.crop.crop_matrix(crop) @ matrix
        canvas = np.zeros((self.crop.size[1], self.crop.size[0]) + image.shape[2:], np.float32)
        window = canvas[:h, :w]
        warped = cv2.warpAffine(
            image, matrix[:2], (w, h), dst=window, flags=self.interpolation, borderMode=cv2.BORDER_CONSTANT
        )
        if not np.shares_memory(warped, canvas):  # OpenCV allocated its own output (an H x W x 1 image)
            window[...] = warped.reshape(window.shape)
        data['image'] = canvas
        data['polys'] = self.crop.move_polys(data['polys'], crop)
        data['scale_w'] = scale
        data['scale_h'] = scale
        return data
