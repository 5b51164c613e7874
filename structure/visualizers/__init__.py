from structure.visualizers.seg_detector_visualizer import SegDetectorVisualizer, draw_polygons  # noqa: F401
