"""Detector(pipeline=True): post-processing in a second thread overlapped with the next forward pass gives the
sequential Detector's results, in input order (lists and streams), really overlaps, reads a stream at most
``max_pending`` chunks ahead, and lets exceptions of either thread reach the caller."""

import os
import threading
import time

import cv2
import numpy as np
import pytest

from inference.detector import Detector
from structure.representers import SegDetectorRepresenter
from tests import ROOT

SHORT_SIDE = 96


def dark_is_text(images):
    """A stand-in model: (N, 3, H, W) normalised images -> (N, 1, H, W) maps, high where the image is dark
    (the synthetic image's text), so that the representer finds boxes."""
    return 1 / (1 + np.exp(8 * images.mean(axis=1, keepdims=True) + 2))


def sample_images():
    """The shipped synthetic image, flipped / cropped copies of it (three resized sizes, interleaved)."""
    image = cv2.imread(os.path.join(ROOT, 'assets', 'images', 'synthetic_1.jpg'))
    assert image is not None
    flipped = np.ascontiguousarray(image[:, ::-1])
    tall = np.ascontiguousarray(image[:, : image.shape[1] // 2])
    wide = np.ascontiguousarray(np.concatenate([image, flipped], axis=1))
    return [image, tall, flipped, wide, tall[::-1], image[::-1], wide[:, ::-1], flipped[::-1]]


def detector(forward=dark_is_text, representer=None, **options):
    representer = representer or SegDetectorRepresenter(box_thresh=0.3, min_size=1, max_candidates=1000)
    return Detector(forward, representer, SHORT_SIDE, **options)


def assert_same(got, expected):
    assert len(got) == len(expected)
    for (polygons, scores), (expected_polygons, expected_scores) in zip(got, expected):
        assert len(polygons) == len(expected_polygons)
        for polygon, expected_polygon in zip(polygons, expected_polygons):
            np.testing.assert_array_equal(polygon, expected_polygon)
        assert scores == expected_scores


@pytest.mark.parametrize('batch_size', [1, 3])
@pytest.mark.parametrize('is_output_polygon', [False, True])
def test_pipelined_results_equal_the_sequential_ones_in_input_order(batch_size, is_output_polygon):
    images = sample_images()
    options = dict(batch_size=batch_size, is_output_polygon=is_output_polygon)
    expected = detector(**options).detect(images)
    assert sum(len(polygons) for polygons, _ in expected) >= 8  # the stand-in model finds text
    assert len({tuple(map(len, p)) for p, _ in expected}) > 1  # the images' results differ: order matters
    assert_same(detector(pipeline=True, **options).detect(images), expected)
    # streams: a generator, read batch_size images at a time; each chunk is batched as detect batches it
    chunks = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    expected_stream = [result for chunk in chunks for result in detector(**options).detect(chunk)]
    for pipeline in (False, True):
        stream = detector(pipeline=pipeline, max_pending=2, **options).detect_stream(iter(images))
        assert_same(list(stream), expected_stream)


class SlowFirstRepresenter(SegDetectorRepresenter):
    """Post-processing of the first map is the slowest: a pipeline that returned results in completion order
    (or fed maps to several threads) would reorder them."""

    def __init__(self):
        super().__init__(box_thresh=0.3, min_size=1, max_candidates=1000)
        self.calls = 0
        self.threads = set()

    def represent_map(self, probability, original_size, is_output_polygon=False):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls == 1:
            time.sleep(0.2)
        return super().represent_map(probability, original_size, is_output_polygon)


def test_post_processing_runs_in_one_other_thread_and_keeps_the_order():
    images = sample_images()
    expected = detector().detect(images)
    representer = SlowFirstRepresenter()
    assert_same(detector(representer=representer, pipeline=True, batch_size=2).detect(images), expected)
    assert representer.calls == len(images)
    assert len(representer.threads) == 1 and threading.current_thread().name not in representer.threads


def test_the_next_forward_pass_runs_while_the_previous_batch_is_post_processed():
    """The first map's post-processing waits until the second forward pass has started: possible only when
    the two overlap (sequentially it would wait in vain and report it)."""
    second_forward = threading.Event()
    forward_calls, overlapped, wait_seconds = [], [], [5.0]

    def forward(images):
        forward_calls.append(len(images))
        if len(forward_calls) == 2:
            second_forward.set()
        return dark_is_text(images)

    class WaitingRepresenter(SegDetectorRepresenter):
        def represent_map(self, probability, original_size, is_output_polygon=False):
            if not overlapped:
                overlapped.append(second_forward.wait(timeout=wait_seconds[0]))
            return super().represent_map(probability, original_size, is_output_polygon)

    images = sample_images()[:4]
    detector(forward, WaitingRepresenter(), pipeline=True).detect(images)
    assert overlapped == [True] and forward_calls == [1, 1, 1, 1]
    # the sequential path post-processes before the next forward: the same wait times out
    second_forward.clear(), forward_calls.clear(), overlapped.clear()
    wait_seconds[0] = 0.05
    detector(forward, WaitingRepresenter()).detect(images)
    assert overlapped == [False]  # the second forward pass came after the first post-processing


def test_a_stream_is_read_at_most_max_pending_chunks_ahead():
    read = []

    def images():
        for image in sample_images():
            read.append(image)
            yield image

    stream = detector(pipeline=True, batch_size=1, max_pending=1).detect_stream(images())
    next(stream)
    # the first chunk's results wait for one pending chunk (max_pending=1) plus the chunk that exceeded it; the
    # reading thread holds at most one chunk read ahead in its queue and one in its hands
    time.sleep(0.2)  # time for the reading thread to read all it may
    assert 2 <= len(read) <= 1 + 3
    assert len(list(stream)) == len(sample_images()) - 1
    assert no_consumer_threads()
    sequential = detector(batch_size=2).detect_stream(images())
    read.clear()
    next(sequential)
    assert len(read) == 2


def no_consumer_threads():
    return not any(thread.name.startswith(('dbnet-postprocess', 'dbnet-read')) for thread in threading.enumerate())


def test_images_are_read_and_preprocessed_in_a_third_thread_in_order():
    images = sample_images()
    expected = detector(batch_size=2).detect(images)
    threads = []
    pipelined = detector(pipeline=True, batch_size=2)
    preprocess = pipelined.preprocess
    pipelined.preprocess = lambda image: (threads.append(threading.current_thread().name), preprocess(image))[1]
    assert_same(list(pipelined.detect_stream(iter(images))), expected)
    assert set(threads) == {'dbnet-read'} and len(threads) == len(images)


def test_a_reading_error_reaches_the_caller_in_its_place():
    def images():
        yield from sample_images()[:3]
        raise OSError('the fourth image cannot be read')

    got = []
    with pytest.raises(OSError, match='fourth image'):
        for result in detector(pipeline=True).detect_stream(images()):
            got.append(result)
    assert len(got) == 3 and no_consumer_threads()


@pytest.mark.parametrize('stream', [False, True])
def test_a_forward_error_reaches_the_caller_and_stops_the_consumer(stream):
    calls = []

    def failing_forward(images):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError('forward failed on the third batch')
        return dark_is_text(images)

    pipelined = detector(failing_forward, pipeline=True)
    with pytest.raises(ValueError, match='third batch'):
        list(pipelined.detect_stream(iter(sample_images()))) if stream else pipelined.detect(sample_images())
    assert len(calls) == 3 and no_consumer_threads()


@pytest.mark.parametrize('stream', [False, True])
def test_a_post_processing_error_reaches_the_caller_and_stops_the_pipeline(stream):
    class FailingRepresenter(SegDetectorRepresenter):
        def represent_map(self, probability, original_size, is_output_polygon=False):
            raise RuntimeError('post-processing failed')

    forward_calls = []

    def forward(images):
        forward_calls.append(1)
        return dark_is_text(images)

    pipelined = detector(forward, FailingRepresenter(), pipeline=True, max_pending=1)
    with pytest.raises(RuntimeError, match='post-processing failed'):
        list(pipelined.detect_stream(iter(sample_images()))) if stream else pipelined.detect(sample_images())
    assert no_consumer_threads()
    if stream:  # the forward passes stop at most max_pending + 1 chunks after the failed one
        assert len(forward_calls) <= 3


def test_an_abandoned_stream_releases_its_consumer():
    stream = detector(pipeline=True).detect_stream(iter(sample_images()))
    next(stream)
    stream.close()
    assert no_consumer_threads()
