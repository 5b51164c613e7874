"""eval.py --speed: images per second, model-only and end to end, in the output and in metrics.json."""

import json
import os
import re

from concern.checkpoint_io import save_checkpoint
from tests.scripts.common import QUICKSTART, ROOT, TINY, run_python


def test_speed_reports_model_and_end_to_end_images_per_second(tmp_path):
    from concern.runtime import load_experiment_for_inference

    config = load_experiment_for_inference(QUICKSTART, TINY[1::2])
    checkpoint = tmp_path / 'model.pth'
    save_checkpoint({'model': config.build('Experiment.structure').builder.build().state_dict()}, checkpoint)
    out = tmp_path / 'results'
    result = run_python(
        os.path.join(ROOT, 'eval.py'),
        QUICKSTART,
        *TINY,
        '--resume',
        checkpoint,
        '--result_dir',
        out,
        '--device',
        'cpu',
        '--speed',
        '--speed_runs',
        '2',
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
