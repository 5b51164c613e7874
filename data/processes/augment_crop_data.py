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

    ``crop='window'`` (an option, not the original's) cuts a ``size`` window out of the augmented image at its
    own scale instead: no resize, so the ``Resize`` augmenter's scale is the scale the network sees. The window
    is centred, up to a random shift, on a random cared-for text (on a random place when there is none) and kept
    inside the image where the image is larger than it (a smaller image sits at the top left, zero padded); text
    the window cuts keeps its part inside. The original's fit crop takes a region of the image (often the whole
    photo) and resizes it into ``size``, so on 1280x720 photos and a 448x448 canvas the network trains on text
    about a third of the size it is tested at.
    """

    CROPS = ('fit', 'window')

    def __init__(
        self,
        augmenter_args=[],
        size=(640, 640),
        max_tries=50,
        min_crop_side_ratio=0.1,
        interpolation='linear',
        crop='fit',
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
        if crop not in self.CROPS:
            raise ValueError(f'AugmentCropData: crop must be one of {", ".join(self.CROPS)}, not {crop!r}.')
        self.crop_mode = crop

    def process(self, data):
        image = np.asarray(data['image'], dtype=np.float32)  # as AugmentDetectionData: the float image
        polygons = AugmentDetectionData.polygons(data['lines'])
        matrix, shape = np.eye(3), image.shape[:2]
        for augmenter in self.augment.augmenter.augmenters:
            step, shape = augmenter.sample(*shape)
            polygons = augmenter.move(polygons, step)
            matrix = step @ matrix
        data = AugmentDetectionData.annotate(data, polygons, image.shape[:2], is_training=True)
        care = RandomCropData.care_polygons(data['polys'])
        crop = self.window_area(shape, care) if self.crop_mode == 'window' else self.crop.crop_area(shape, care)
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

    def window_area(self, shape, polys):
        """(x, y, width, height) of a ``size`` window of an image of ``shape`` (h, w), around a random one of the
        cared-for ``polys`` ((K, 2) arrays) when there are any; numpy.random draws."""
        height, width = shape
        window_w, window_h = self.crop.size
        polys = [points for points in polys if points.shape[0]]
        if polys:
            centre = polys[np.random.randint(len(polys))].mean(axis=0)
            # the text's centre falls anywhere in the middle half of the window
            x = centre[0] - window_w * np.random.uniform(0.25, 0.75)
            y = centre[1] - window_h * np.random.uniform(0.25, 0.75)
        else:
            x = np.random.uniform(0, max(0, width - window_w))
            y = np.random.uniform(0, max(0, height - window_h))
        x = int(round(min(max(x, 0), max(0, width - window_w))))
        y = int(round(min(max(y, 0), max(0, height - window_h))))
        return x, y, window_w, window_h
