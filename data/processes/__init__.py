from .augment_crop_data import AugmentCropData
from .augment_data import AugmentDetectionData, OpenCVAugmenter
from .data_process import DataProcess
from .filter_keys import FilterKeys
from .make_border_map import MakeBorderMap
from .make_icdar_data import MakeICDARData
from .make_seg_detection_data import MakeSegDetectionData
from .normalize_image import NormalizeImage
from .random_crop_data import RandomCropData
