"""Settings for the whole test session.

- Threads: every test process (an xdist worker and the scripts it starts) gets an equal share of the cores
  (``OMP_NUM_THREADS``, ``torch.set_num_threads``). Two workers of two OpenMP threads each on two cores
  oversubscribe them, and a tiny model's training step then takes 5-10 times longer (threads spin waiting for
  each other). Scripts started by a test inherit the share through the environment.
- The ONNX exports that demo.py / eval.py cache on their default CPU path go to a temporary folder of this session
  (``$DBNET_CACHE_DIR``, inherited by the scripts the tests start), never to the user's ~/.cache.
"""

import os

import pytest
import torch


def _threads_per_process() -> int:
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    return max(1, (os.cpu_count() or 1) // workers)


THREADS = _threads_per_process()
os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(THREADS)
torch.set_num_threads(THREADS)


@pytest.fixture(scope='session', autouse=True)
def onnx_cache_folder(tmp_path_factory):
    previous = os.environ.get('DBNET_CACHE_DIR')
    os.environ['DBNET_CACHE_DIR'] = str(tmp_path_factory.mktemp('onnx_cache'))
    yield os.environ['DBNET_CACHE_DIR']
    if previous is None:
        os.environ.pop('DBNET_CACHE_DIR', None)
    else:
        os.environ['DBNET_CACHE_DIR'] = previous
