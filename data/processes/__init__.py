from .data_process import DataProcess
from .augment_data import AugmentDetectionData, OpenCVAugmenter
from .random_crop_data import RandomCropData
from .make_icdar_data import MakeICDARData
from .make_seg_detection_data import MakeSegDetectionData
from .make_border_map import MakeBorderMap
from .normalize_image import NormalizeImage
from .filter_keys import FilterKeys
