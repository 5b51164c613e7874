"""benchmarks/bench_train_pipeline.py: the stage table on a tiny dataset, and the arithmetic of the report."""

import os
import re
import subprocess
import sys

from benchmarks.bench_train_pipeline import report
from data.synth import write_db_layout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_report_medians_shares_and_cores():
    runs = [
        {'read': 0.2, 'Augment': 0.6, '  Augment.Resize': 0.4},
        {'read': 0.4, 'Augment': 0.6, '  Augment.Resize': 0.2},
    ]
    text = report(runs, num=10, gpu_images_per_s=100.0, batch_size=16)
    # medians per sample: read 30 ms, Augment 60 ms; total = median of per-run totals (80, 100) = 90 ms
    assert re.search(r'^read\s+30\.00\s+33\.3%', text, re.M)
    assert re.search(r'^total\s+90\.00', text, re.M)
    assert 'images/s per core: 11.11' in text and 'slowest stage: Augment' in text
    assert '9.0 -> 9 data workers' in text


def test_runs_the_experiment_pipeline_on_a_tiny_dataset(tmp_path):
    root = tmp_path / 'icdar_tiny'
    write_db_layout(str(root), 4, seed=0, split='train', fonts='hershey', image_size=(72, 96))
    command = [
        sys.executable,
        '-m',
        'benchmarks.bench_train_pipeline',
        str(root),
        '--num',
        '4',
        '--repeats',
        '2',
        '--batch',
        '2',
        '--gpu_images_per_s',
        '50',
        '--opt',
        'train_data.processes.1.size=[96, 96]',
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for stage in (
        'read (gt + JPEG decode)',
        'AugmentDetectionData',
        'RandomCropData',
        'MakeSegDetectionData',
        'MakeBorderMap',
        'NormalizeImage',
        'collate (batches of 2)',
        'AugmentDetectionData.Resize',
    ):
        assert stage in result.stdout
    per_core = float(re.search(r'images/s per core: ([\d.]+)', result.stdout).group(1))
    cores = float(re.search(r'to feed 50 images/s .*: ([\d.]+) ->', result.stdout).group(1))
    assert abs(cores - 50 / per_core) < 0.06
