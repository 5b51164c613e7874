"""What the script tests share: the repository root, the quick-start experiment, the options that shrink it, and
how a script runs."""

import os
import subprocess
import sys

from tests import ROOT

QUICKSTART = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
RESIZE_96 = "[['Resize', {'width': 96, 'height': 96}]]"
# the quick-start experiment on 96x96 images (4 training, 3 validation) with a narrow head
TINY = [
    '--opt',
    'train_data.num_samples=4',
    '--opt',
    'train_data.image_size=[96,96]',
    '--opt',
    'train_data.processes.1.size=[96,96]',
    '--opt',
    'validate_data.num_samples=3',
    '--opt',
    'validate_data.image_size=[96,96]',
    '--opt',
    f'validate_data.processes.0.augmenter_args={RESIZE_96}',
    '--opt',
    'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
]


def run_python(*args, timeout=300):
    """``python *args`` from the repository root with the repository importable; the CompletedProcess (text)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
