"""Images read and prepared for the model ahead of it, in order, with a fixed number in flight.

``load_images(paths, prepare, workers, in_flight)`` yields ``(path, prepare(path))`` per path, in the order of
``paths``; ``prepare`` is ``inference.tiling.read_and_prepare`` with its options bound by ``functools.partial``
(it returns a ``PreparedImage``, or the ``ImageReadError`` of a file that cannot be read). It runs in ``workers``
processes (started with ``spawn``: nothing of the parent's threads or model is copied), or with ``workers=0`` in
one thread of this process. At most ``in_flight`` images are being read or wait to be taken, so the memory held
does not grow with the number of paths. No torch: the ONNX Runtime path uses it too.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Callable

__all__ = ['load_images']


def _quiet_worker() -> None:
    """A loader process: OpenCV on one thread (the processes are the parallelism)."""
    import cv2

    cv2.setNumThreads(1)


def _executor(workers: int) -> Executor:
    if workers == 0:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix='dbnet-read')
    context = multiprocessing.get_context('spawn')
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_quiet_worker)


def load_images(
    paths: Sequence[str], prepare: Callable[[str], object], workers: int = 0, in_flight: int = 4
) -> Iterator[tuple[str, object]]:
    """``(path, prepare(path))`` for each path, in order, computed ``in_flight`` paths ahead by ``workers``
    processes (0: one thread). Leaving the loop early cancels what has not started."""
    in_flight = max(1, int(in_flight))
    with _executor(workers) as executor:
        pending: deque = deque()
        try:
            for path in paths:
                pending.append((path, executor.submit(prepare, path)))
                if len(pending) >= in_flight:
                    done_path, future = pending.popleft()
                    yield done_path, future.result()
            while pending:
                done_path, future = pending.popleft()
                yield done_path, future.result()
        finally:
            for _, future in pending:
                future.cancel()
