"""Prepared images through a detector's model, batched by input size, post-processed in a second thread.

``detect_prepared(detector, items)``: ``items`` are ``(key, PreparedImage)`` (``inference.tiling``); each image's
inputs (one resized image, or its tiles) join a queue per input shape, and a queue runs through
``detector.forward`` as soon as it holds ``detector.batch_size`` inputs (or, when more than ``window`` inputs
wait, the longest queue runs). When an image's last map is back, its map (stitched for tiles) goes to
``detector.representer`` (in a second thread with ``pipeline``). Yields ``(key, (height, width), polygons,
scores)`` per image in the order images are finished, not the input order; the detections of an image do not
depend on the images around it. Memory: at most ``window`` + ``batch_size`` inputs wait, plus the maps of images
with tiles still queued, plus ``max_pending`` images in post-processing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from inference.tiling import PreparedImage, stitch

__all__ = ['detect_prepared']


@dataclass
class _Image:
    key: object
    prepared: PreparedImage
    maps: list = field(default_factory=list)
    waiting: int = 0


class _Queues:
    """The inputs waiting for the model, by shape; ``run`` sends one batch through ``forward``."""

    def __init__(self, forward, batch_size: int):
        self.forward, self.batch_size = forward, batch_size
        self.by_shape: dict = {}
        self.size = 0

    def add(self, image: _Image) -> None:
        image.maps = [None] * len(image.prepared.inputs)
        image.waiting = len(image.maps)
        for index, tensor in enumerate(image.prepared.inputs):
            self.by_shape.setdefault(tensor.shape, deque()).append((image, index))
            self.size += 1

    def full_shape(self):
        return next((shape for shape, queue in self.by_shape.items() if len(queue) >= self.batch_size), None)

    def longest_shape(self):
        return max(self.by_shape, key=lambda shape: len(self.by_shape[shape]), default=None)

    def run(self, shape) -> list:
        """One forward pass of up to ``batch_size`` inputs of ``shape``; returns the images it completed."""
        queue = self.by_shape[shape]
        chunk = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
        if not queue:
            del self.by_shape[shape]
        self.size -= len(chunk)
        maps = self.forward(np.stack([image.prepared.inputs[index] for image, index in chunk]))
        completed = []
        for row, (image, index) in enumerate(chunk):
            image.maps[index] = maps[row, 0]
            image.prepared.inputs[index] = None  # the input is released once its map is back
            image.waiting -= 1
            if image.waiting == 0:
                completed.append(image)
        return completed


def _represent(detector, image: _Image) -> tuple:
    prepared = image.prepared
    probability = image.maps[0] if prepared.layout is None else stitch(image.maps, prepared.layout)
    polygons, scores = detector.representer.represent_map(probability, prepared.size, detector.is_output_polygon)
    return image.key, prepared.size, polygons, scores


def detect_prepared(
    detector, items: Iterable[tuple[object, PreparedImage]], window: int | None = None, pipeline: bool = True
) -> Iterator[tuple]:
    """``(key, (height, width), polygons, scores)`` per image of ``items``, in the order they are finished;
    ``detector``: an ``inference.detector.Detector`` (its forward, representer, batch_size, max_pending)."""
    queues = _Queues(detector.forward, detector.batch_size)
    window = window or 4 * detector.batch_size
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix='dbnet-postprocess') as consumer:
        finished: deque = deque()

        def post_process(images: list) -> Iterator[tuple]:
            for image in images:
                finished.append(consumer.submit(_represent, detector, image) if pipeline else image)
            while finished and (not pipeline or len(finished) > detector.max_pending):
                item = finished.popleft()
                yield item.result() if pipeline else _represent(detector, item)

        for key, prepared in items:
            queues.add(_Image(key, prepared))
            while (shape := queues.full_shape()) is not None or queues.size > window:
                yield from post_process(queues.run(shape if shape is not None else queues.longest_shape()))
        while queues.by_shape:
            yield from post_process(queues.run(queues.longest_shape()))
        while finished:
            yield finished.popleft().result()
