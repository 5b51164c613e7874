"""One setting for the whole test session: the ONNX exports that demo.py / eval.py cache on their default CPU path
go to a temporary folder of this session (``$DBNET_CACHE_DIR``, inherited by the scripts the tests start), never to
the user's ~/.cache."""

import os

import pytest


@pytest.fixture(scope='session', autouse=True)
def onnx_cache_folder(tmp_path_factory):
    previous = os.environ.get('DBNET_CACHE_DIR')
    os.environ['DBNET_CACHE_DIR'] = str(tmp_path_factory.mktemp('onnx_cache'))
    yield os.environ['DBNET_CACHE_DIR']
    if previous is None:
        os.environ.pop('DBNET_CACHE_DIR', None)
    else:
        os.environ['DBNET_CACHE_DIR'] = previous
