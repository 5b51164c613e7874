"""One tiny trained quick-start model for every script test that needs a checkpoint, trained once per test session.

Under pytest-xdist the workers share it: the first to need it trains it under a file lock in the session's common
temporary folder, the others wait for it and reuse it. Tests read it and never write into its workspace."""

import os

import filelock
import pytest

from tests.scripts.common import QUICKSTART, ROOT, TINY, run_python


def session_folder(tmp_path_factory):
    """The temporary folder of this test session, common to every xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """The quick-start experiment on 96x96 images, trained 12 of 14 scheduled iterations (``--max_iterations``
    stops it: 2 iterations per epoch, 7 epochs), batch 2, one record per iteration; returns its workspace."""
    root = session_folder(tmp_path_factory) / 'tiny_trained'
    workspace, done = root / 'tiny', root / 'done'
    with filelock.FileLock(str(root) + '.lock'):
        if not done.exists():
            command = [os.path.join(ROOT, 'train.py'), QUICKSTART, *TINY]
            command += ['--opt', 'Experiment.logger.log_interval=1', '--num_workers', '0', '--batch_size', '2']
            command += ['--epochs', '7', '--max_iterations', '12', '--no-progress', '--no-validate']
            command += ['--name', 'tiny', '--workspace_root', str(root)]
            result = run_python(*command)
            assert result.returncode == 0, result.stderr[-3000:]
            done.write_text('trained\n')
    return workspace
