"""Measure which repository files the two flows of docs/architecture.md pass through.

    python -m tools.flow_files [--image PATH] [--experiment EXP.yaml]

A profiler (``sys.setprofile``, also set for threads started meanwhile) records every file of this repository
in which a function is called while

1. one training sample goes through the training loader (``data/data_loader.py`` ``make_train_loader``, one
   process, no worker processes so that the profiler sees the dataset) and one ``Trainer.train_step`` to the
   loss and the optimiser step;
2. one image goes through ``demo.py`` ``detect_images`` (read, detect, write ``res_<name>.txt`` and its line of
   ``results.jsonl``), with and without ``--visualize``.

Set-up (compiling the config, building the model, loading the checkpoint, building the loader and the
detector) runs before the profiler starts and is not counted. The real functions of train.py, the trainer
and demo.py run; only the sizes are made tiny (a small crop, one image, a randomly initialised model).

Without ``--image`` the sample is a small synthetic image with two ICDAR 2015 ground-truth lines, written in a
temporary folder in the original's layout (``icdar2015/train_images``, ``train_gts``, ``train_list.txt``). With
``--image`` that photo is used; its ground truth is read from ``../train_gts/<name>.txt`` beside its folder when
there is one (the ICDAR 2015 layout), else the synthetic lines are used. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager

import cv2
import numpy as np

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.cli import run_main
from concern.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_EXPERIMENT = os.path.join('experiments', 'seg_detector', 'ic15_resnet18_deform_thre.yaml')
# The flows' own data sizes, made tiny; the code run is the same as for the experiment's sizes.
TINY_OVERRIDES = [
    'Experiment.structure.builder.model_args.backbone_args={pretrained: false}',
    'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
    'Experiment.train.data_loader.batch_size=1',
    'Experiment.train.data_loader.num_workers=0',
]
SYNTHETIC_LINES = ['16,16,112,16,112,40,16,40,TEXT', '20,60,90,60,90,80,20,80,###']


class FileRecorder:
    """A ``sys.setprofile`` function: records, in order of first call, each file under ``root`` in which a
    Python function is called, with the qualified name of that first function. ``files`` is a list of
    (path relative to root, function name); the files in ``exclude`` (absolute paths) are not recorded."""

    def __init__(self, root: str, exclude=()):
        self.root = os.path.join(os.path.abspath(root), '')
        self.exclude = {os.path.abspath(path) for path in exclude}
        self.seen = {}

    def __call__(self, frame, event, arg):
        if event != 'call':
            return
        code = frame.f_code
        path = code.co_filename
        if path in self.seen or not path.startswith(self.root) or path in self.exclude:
            return
        if 'site-packages' in path or os.sep + '.venv' in path:
            return
        self.seen[path] = code.co_qualname

    @property
    def files(self) -> list[tuple[str, str]]:
        return [(os.path.relpath(path, self.root).replace(os.sep, '/'), name) for path, name in self.seen.items()]


@contextmanager
def recording(recorder: FileRecorder):
    """Profiles this thread and the threads started inside the block with ``recorder``."""
    threading.setprofile(recorder)
    sys.setprofile(recorder)
    try:
        yield recorder
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def _new_recorder() -> FileRecorder:
    return FileRecorder(ROOT, exclude=[os.path.abspath(__file__)])


def write_sample_layout(folder: str, image_path: str | None = None) -> str:
    """Writes one training sample in the ICDAR 2015 layout under ``folder/icdar2015``; returns that folder.

    The image is ``image_path`` (its ground truth from ``../train_gts/<name>.txt`` when present) or a small
    synthetic picture with two text boxes."""
    root = os.path.join(folder, 'icdar2015')
    os.makedirs(os.path.join(root, 'train_images'))
    os.makedirs(os.path.join(root, 'train_gts'))
    lines = SYNTHETIC_LINES
    if image_path is None:
        name = 'img_1.jpg'
        image = np.full((96, 128, 3), 90, np.uint8)
        cv2.rectangle(image, (16, 16), (112, 40), (240, 240, 240), -1)
        cv2.rectangle(image, (20, 60), (90, 80), (200, 200, 200), -1)
        cv2.imwrite(os.path.join(root, 'train_images', name), image)
    else:
        if not os.path.isfile(image_path):
            raise UserError(f'--image {image_path} is not a file; give the path of a photo.')
        name = os.path.basename(image_path)
        shutil.copy(image_path, os.path.join(root, 'train_images', name))
        gt = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(image_path))), 'train_gts', name + '.txt')
        if os.path.isfile(gt):
            with open(gt, encoding='utf-8-sig') as handle:
                lines = handle.read().splitlines()
    with open(os.path.join(root, 'train_gts', name + '.txt'), 'w', encoding='utf-8') as handle:
        handle.write(''.join(line + '\n' for line in lines))
    with open(os.path.join(root, 'train_list.txt'), 'w', encoding='utf-8') as handle:
        handle.write(name + '\n')
    return root


def measure_training(experiment: str, dataset_root: str, workspace: str) -> list[tuple[str, str]]:
    """Files of one sample's path: the training loader's first batch (one sample) and one train_step."""
    import train
    from concern.distributed import init_distributed
    from concern.log import Logger
    from data.data_loader import make_train_loader
    from training.trainer import Trainer, TrainOptions

    data_dir = os.path.join(dataset_root, '')
    args = train.parse_args(
        [experiment, '--device', 'cpu', '--no-validate', '--no-progress', '--workspace_root', workspace]
        + [item for override in TINY_OVERRIDES for item in ('--opt', override)]
        + ['--opt', f'train_data.data_dir=[{data_dir}]', '--opt', f'train_data.data_list=[{data_dir}train_list.txt]']
        + ['--opt', 'train_data.processes.1.size=[64, 64]']
    )
    config = train.compile_config(args)
    context, device = init_distributed(args.device)
    train.seed_everything(args.seed)
    structure = config.build('Experiment.structure')
    settings = config.build('Experiment.train')
    model = structure.builder.build().to(device)
    options = TrainOptions(workspace=workspace, validate=False, seed=args.seed, show_progress=False)
    trainer = Trainer(model, settings, structure, None, Logger(), options, context, device)
    loader, _sampler = make_train_loader(settings.data_loader, context, options.seed)
    model.train()
    with recording(_new_recorder()) as recorder:
        batch = next(iter(loader))
        loss, _metrics, status = trainer.train_step(batch)
    if status != 'ok':
        raise RuntimeError(f'the measured training step ended with status {status!r}, not a loss.')
    return recorder.files


def measure_image(experiment: str, image_path: str, folder: str, visualize: bool) -> list[tuple[str, str]]:
    """Files of one image's path through demo.py's per-image work (``detect_images``)."""
    import torch

    import demo
    from concern.checkpoint_io import save_checkpoint
    from concern.result_log import ResultLog
    from concern.runtime import load_experiment_for_inference
    from data.image_io import find_images

    overrides = [item for override in TINY_OVERRIDES for item in ('--opt', override)]
    checkpoint = os.path.join(folder, 'random_model.pth')
    if not os.path.exists(checkpoint):
        torch.manual_seed(0)
        config = load_experiment_for_inference(experiment, TINY_OVERRIDES)
        save_checkpoint({'model': config.build('Experiment.structure').builder.build().state_dict()}, checkpoint)
    result_dir = os.path.join(folder, 'demo_results_visualize' if visualize else 'demo_results')
    args = demo.parse_args(
        [experiment, '--resume', checkpoint, '--image_path', image_path, '--result_dir', result_dir]
        + ['--device', 'cpu', '--image_short_side', '64', '--plain']  # the PyTorch model's files, not ONNX Runtime
        + (['--visualize'] if visualize else [])
        + overrides
    )
    images = find_images(args.image_path)
    detector = demo.build_detector(args)
    import inference.batching  # noqa: F401  set-up: the modules demo.py imports on its first image, imported
    import inference.image_loader  # noqa: F401  before the profiler starts so that only calls are counted

    with ResultLog(result_dir, {'flow': 'image'}) as log, recording(_new_recorder()) as recorder:
        count, _failed = demo.detect_images(args, images, detector, log)
    if count != 1:
        raise RuntimeError(f'demo.detect_images processed {count} images, not 1.')
    return recorder.files


def measure(image: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> dict[str, list[tuple[str, str]]]:
    """{'training': files, 'image': files with --visualize, 'image_no_visualize': files without}; each a list of
    (path relative to the repository, first function called there) in order of first call."""
    if not os.path.isfile(experiment):
        raise UserError(f'--experiment {experiment} is not a file; give an experiment YAML file.')
    with tempfile.TemporaryDirectory(prefix='flow_files_') as folder:
        dataset_root = write_sample_layout(folder, image)
        photo = os.path.join(dataset_root, 'train_images', os.listdir(os.path.join(dataset_root, 'train_images'))[0])
        return {
            'training': measure_training(experiment, dataset_root, os.path.join(folder, 'workspace')),
            'image': measure_image(experiment, photo, folder, visualize=True),
            'image_no_visualize': measure_image(experiment, photo, folder, visualize=False),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='List the files the training and demo flows pass through.')
    parser.add_argument('--image', help='a photo to use (default: a small synthetic image)')
    parser.add_argument('--experiment', default=DEFAULT_EXPERIMENT, help='experiment YAML file')
    args = parser.parse_args(argv)
    flows = measure(args.image, args.experiment)
    titles = {
        'training': 'A training sample: disk to loss',
        'image': 'An image: demo.py to result files (--visualize)',
        'image_no_visualize': 'An image: demo.py to result files (without --visualize)',
    }
    for key, files in flows.items():
        print(f'{titles[key]} ({len(files)} files)')
        for number, (path, function) in enumerate(files, start=1):
            print(f'{number:3d}. {path} — {function}')
        print()
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
