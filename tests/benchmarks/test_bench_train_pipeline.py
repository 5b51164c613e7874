"""benchmarks/bench_train_pipeline.py: the stage table on a tiny dataset, and the arithmetic of the report."""

import re
import subprocess
import sys

from benchmarks.bench_train_pipeline import fused_processes, report, unfused_processes
from data.processes import AugmentCropData, AugmentDetectionData, MakeICDARData, NormalizeImage, RandomCropData
from data.synth import write_db_layout
from tests import ROOT


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
    two, rest = result.stdout.split('== fused (AugmentCropData) ==')
    fused, uint8 = rest.split('== uint8 (AugmentCropData, NormalizeImage on_device) ==')
    assert '== two processes (AugmentDetectionData + RandomCropData) ==' in two
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
        assert stage in two
    for part in (fused, uint8):
        assert re.search(r'^AugmentCropData\s', part, re.M) and 'RandomCropData' not in part
    per_core = [float(value) for value in re.findall(r'images/s per core: ([\d.]+)', result.stdout)]
    cores = [float(value) for value in re.findall(r'to feed 50 images/s .*: ([\d.]+) ->', result.stdout)]
    assert len(per_core) == len(cores) == 3
    for speed, needed in zip(per_core, cores):
        assert abs(needed - 50 / speed) < 0.06
    totals = re.search(r'^two -> fused -> uint8: ([\d.]+) -> ([\d.]+) -> ([\d.]+) ms/sample', result.stdout, re.M)
    for total, speed in zip(totals.groups(), per_core):
        assert abs(1000 / float(total) - speed) < 0.02 * speed


def test_fused_and_unfused_processes_swap_the_augmentation_and_crop():
    two = [
        AugmentDetectionData(augmenter_args=[['Fliplr', 0.5], ['Resize', [0.5, 3.0]]]),
        RandomCropData(size=[320, 160], max_tries=7, min_crop_side_ratio=0.2),
        MakeICDARData(),
    ]
    fused = fused_processes(two)
    assert [type(process) for process in fused] == [AugmentCropData, MakeICDARData] and fused[1] is two[2]
    assert fused[0].augment.augmenter_args == two[0].augmenter_args
    assert (fused[0].crop.size, fused[0].crop.max_tries, fused[0].crop.min_crop_side_ratio) == ((320, 160), 7, 0.2)
    back = unfused_processes(fused)
    assert [type(process) for process in back] == [AugmentDetectionData, RandomCropData, MakeICDARData]
    assert back[0].augmenter_args == two[0].augmenter_args and back[1].size == (320, 160)
    assert back[1].max_tries == 7 and back[1].min_crop_side_ratio == 0.2
    normalize = fused_processes([NormalizeImage()], on_device=True)[0]
    assert isinstance(normalize, NormalizeImage) and normalize.on_device
    validation = [AugmentDetectionData(augmenter_args=[['Resize', {'width': 64, 'height': 64}]], only_resize=True)]
    assert fused_processes(validation + [RandomCropData()])[0] is validation[0]  # only a training augmentation
