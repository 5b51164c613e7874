"""Drawing detections (polygons + scores) on images, for demo overlays and validation snapshots."""

import cv2
import numpy as np


def draw_polygons(image, polygons, scores=None, color=(0, 0, 255), thickness=2, font_scale=0.5):
    """Return a uint8 copy of the BGR `image` (uint8, or float 0..255 as read_image returns it, rounded and
    clipped) with each (K, 2) polygon outlined and its score written."""
    if image.dtype == np.uint8:
        canvas = np.ascontiguousarray(image).copy()
    else:
        canvas = np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    for index, polygon in enumerate(polygons):
        points = np.rint(np.asarray(polygon, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], True, color, thickness)
        if scores is not None:
            x, y = points[:, 0, 0].min(), points[:, 0, 1].min()
            cv2.putText(
                canvas,
                f'{float(scores[index]):.2f}',
                (int(x), max(int(y) - 3, 10)),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                color,
                1,
                cv2.LINE_AA,
            )
    return canvas


class SegDetectorVisualizer:
    """Overlays for validation and demos.

    Arguments: eager_show=False (as the original; when True, each visualisation is also shown with
    cv2.imshow). visualize(batch, output, pred) -> {'<filename>_output': overlay of the detections on the
    original image read from batch['filename'][i], '<filename>_pred': the probability map as a uint8 image}.
    demo_visualize(image, output) -> the BGR image with the polygons of output = (boxes, scores) drawn.
    """

    def __init__(self, eager_show=False):
        self.eager_show = eager_show

    def visualize(self, batch, output, pred):
        boxes_batch, scores_batch = output
        if isinstance(pred, dict):
            pred = pred['binary']
        if hasattr(pred, 'detach'):
            pred = pred.detach().cpu().numpy()
        results = {}
        for index, filename in enumerate(batch['filename']):
            image = cv2.imread(str(filename), cv2.IMREAD_COLOR)
            if image is None:
                raise FileNotFoundError(f'SegDetectorVisualizer: cannot read the image {filename}.')
            name = str(filename).replace('/', '_')
            results[f'{name}_output'] = draw_polygons(image, boxes_batch[index], scores_batch[index])
            results[f'{name}_pred'] = (np.clip(pred[index, 0], 0, 1) * 255).astype(np.uint8)
        if self.eager_show:
            for key, value in results.items():
                cv2.imshow(key, value)
            cv2.waitKey(0)
        return results

    def demo_visualize(self, image, output):
        boxes, scores = output
        return draw_polygons(image, boxes, scores)
