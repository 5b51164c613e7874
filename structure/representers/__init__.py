from structure.representers.seg_detector_representer import SegDetectorRepresenter  # noqa: F401
