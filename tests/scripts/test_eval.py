"""eval.py --speed: images per second, model-only and end to end, in the output and in metrics.json."""

import json
import os
import re
import subprocess
import sys

from concern.checkpoint_io import save_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
# the quick-start model with a narrow decoder on 3 validation images of 96x96
TINY = [
    '--opt',
    'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
    '--opt',
    'validate_data.num_samples=3',
    '--opt',
    'validate_data.image_size=[96,96]',
    '--opt',
    "validate_data.processes.0.augmenter_args=[['Resize', {'width': 96, 'height': 96}]]",
]


def test_speed_reports_model_and_end_to_end_images_per_second(tmp_path):
    from concern.runtime import load_experiment_for_inference

    config = load_experiment_for_inference(QUICKSTART, TINY[1::2])
    checkpoint = tmp_path / 'model.pth'
    save_checkpoint({'model': config.build('Experiment.structure').builder.build().state_dict()}, checkpoint)
    out = tmp_path / 'results'
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, 'eval.py'),
            QUICKSTART,
            *TINY,
            '--resume',
            str(checkpoint),
            '--result_dir',
            str(out),
            '--device',
            'cpu',
            '--speed',
            '--speed_runs',
            '2',
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    speed = json.loads((out / 'metrics.json').read_text())['datasets']['synthetic']['speed']
    assert speed['images'] == 2 * 3  # every image of the set, once per run
    # end to end = model + post-processing over the same images: never faster than the model alone
    assert 0 < speed['end_to_end_images_per_s'] <= speed['model_images_per_s']
    printed = re.search(
        r'synthetic: model ([\d.]+) images/s, end to end ([\d.]+) images/s \(6 images, cpu\)', result.stdout
    )
    assert printed, result.stdout
    assert printed.group(1) == f'{speed["model_images_per_s"]:.2f}'
