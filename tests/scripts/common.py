"""What the script tests share: the repository root, the quick-start experiment and the options that shrink it."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
