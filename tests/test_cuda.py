"""The CUDA paths: deformable conv kernels, whole models, mixed-precision training and fast inference on a GPU
give the CPU's numbers. Skipped where no GPU is present (CI); run on a GPU machine with
``python -m pytest tests/test_cuda.py``."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from assets.ops.dcn import DeformConv, ModulatedDeformConv, original_stride_read
from concern.result_log import detections_by_image
from inference.optimized import optimize_for_inference, optimized_forward
from tests import ROOT
from tests.inference.test_onnx_export import TinyBottleneckDB, db_model, randomize

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

CUDA = torch.device('cuda')


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 off, so that float32 on the GPU is compared with float32 on the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def gradients(conv, x, offset, mask):
    """Output and the gradients of a fixed random projection of it w.r.t. every input and parameter."""
    conv.zero_grad(set_to_none=True)
    tensors = [t.detach().clone().requires_grad_(True) for t in (x, offset) + ((mask,) if mask is not None else ())]
    out = conv(*tensors)
    projection = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype).to(out.device)
    (out * projection).sum().backward()
    grads = [t.grad for t in tensors] + [p.grad for p in conv.parameters()]
    return [out.detach().cpu()] + [g.detach().cpu() for g in grads]


@pytest.mark.parametrize(
    'modulated,stride,groups,dg',
    [(True, 1, 1, 1), (True, 2, 1, 1), (True, 1, 2, 2), (False, 1, 1, 1), (False, 2, 1, 2)],
)
def test_deformable_conv_forward_and_backward_match_the_cpu(modulated, stride, groups, dg):
    torch.manual_seed(0)
    cls = ModulatedDeformConv if modulated else DeformConv
    kwargs = dict(bias=True) if modulated else {}
    conv = cls(4, 6, 3, stride=stride, padding=1, groups=groups, deformable_groups=dg, **kwargs).double()
    if modulated:
        with torch.no_grad():
            conv.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    ho, wo = (11 - 1) // stride + 1, (9 - 1) // stride + 1
    offset = torch.randn(2, dg * 18, ho, wo, dtype=torch.float64) * 2.5  # crosses pixels and leaves the image
    mask = torch.rand(2, dg * 9, ho, wo, dtype=torch.float64) if modulated else None
    cpu = gradients(conv, x, offset, mask)
    gpu_conv = copy.deepcopy(conv).to(CUDA)
    gpu = gradients(gpu_conv, x.to(CUDA), offset.to(CUDA), mask.to(CUDA) if mask is not None else None)
    for name, want, got in zip(['out', 'x', 'offset', 'mask/weight', 'weight/bias', 'bias'], cpu, gpu):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=name)


def test_stride2_offset_read_is_the_same_on_the_gpu():
    torch.manual_seed(3)
    conv = ModulatedDeformConv(3, 4, 3, stride=2, padding=1, bias=False).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    offset_mask = torch.randn(2, 27, 9, 8, dtype=torch.float64)

    def run(device):
        om = offset_mask.to(device)
        layer = conv.to(device)
        return layer(
            x.to(device), original_stride_read(om[:, :18], (5, 4)), original_stride_read(om[:, -9:].sigmoid(), (5, 4))
        ).cpu()

    torch.testing.assert_close(run(CUDA), run('cpu'), rtol=1e-9, atol=1e-9)


MODELS = {
    'resnet18': lambda: db_model('resnet18', [64, 128, 256, 512]),
    'deformable_resnet18': lambda: db_model('deformable_resnet18', [64, 128, 256, 512]),
    'bottleneck_stride_read': lambda: randomize(TinyBottleneckDB()),
    'mobilenet_v3_small': lambda: db_model('mobilenet_v3_small', [16, 24, 48, 576]),
}


def plain(model, inputs, device):
    with torch.no_grad():
        return model(torch.from_numpy(inputs).to(device), training=False).cpu().numpy()


def images(batch=2, height=96, width=128, seed=5):
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize('name', sorted(MODELS))
def test_models_on_the_gpu_match_the_cpu_and_fast_paths_match_the_plain_forward(name):
    model = MODELS[name]()
    inputs = images()
    expected = plain(model, inputs, 'cpu')
    gpu_model = copy.deepcopy(model).to(CUDA)
    assert np.abs(plain(gpu_model, inputs, CUDA) - expected).max() < 1e-4
    fast = optimize_for_inference(gpu_model)
    assert np.abs(optimized_forward(fast, CUDA)(inputs) - expected).max() < 1e-4
    for precision in ('fp16', 'bf16'):  # random weights give steep maps: a few pixels near 0.5 may flip far
        got = optimized_forward(fast, CUDA, precision=precision)(inputs)
        assert got.dtype == np.float32 and np.isfinite(got).all()
        assert np.abs(got - expected).mean() < (0.005 if precision == 'fp16' else 0.02), precision


QUICKSTART = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
SMALL = [
    'train_data.num_samples=8',
    'train_data.image_size=[128,128]',
    'train_data.processes.1.size=[128,128]',
    'Experiment.structure.builder.model_args.decoder_args.inner_channels=64',
]


def training_batch(overrides):
    from concern.config import load_config

    config = load_config(QUICKSTART, overrides)
    loader = config.build('Experiment.train.data_loader')
    samples = [loader.dataset[index] for index in range(4)]
    return config, torch.utils.data.default_collate(samples)


def test_amp_training_steps_match_float32_and_stay_finite():
    config, batch = training_batch(SMALL)
    losses = {}
    for amp in (False, True):
        torch.manual_seed(0)
        model = config.build('Experiment.structure.builder').build(CUDA)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        scaler = torch.amp.GradScaler('cuda', enabled=amp)
        gpu_batch = {k: v.to(CUDA) if torch.is_tensor(v) else v for k, v in batch.items()}
        losses[amp], updates = [], 0
        for _ in range(40):  # the scaler starts at 2**16 and skips the steps whose scaled gradients overflow
            optimizer.zero_grad()
            with torch.autocast('cuda', dtype=torch.float16, enabled=amp):
                loss, pred, metrics = model(gpu_batch, training=True)
            scale = scaler.get_scale()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses[amp].append(loss.item())
            updates += scaler.get_scale() >= scale
            if updates == 5:
                break
        assert updates == 5, losses[amp]
        assert all(np.isfinite(p.detach().cpu().numpy()).all() for p in model.parameters())
    for amp in (False, True):
        assert losses[amp][-1] < losses[amp][0], (amp, losses)
    # same data, same initial weights: the first mixed-precision loss is the float32 loss up to fp16 rounding
    # (the losses themselves run in float32; the saturated sigmoid near 0 / 1 makes up the difference)
    np.testing.assert_allclose(losses[True][0], losses[False][0], rtol=0.05)


def test_train_and_eval_scripts_on_the_gpu_with_amp(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    tiny = [
        f'--opt={override}'
        for override in SMALL
        + [
            'validate_data.num_samples=4',
            'validate_data.image_size=[128,128]',
            'Experiment.train.data_loader.num_workers=2',
        ]
    ]
    result = subprocess.run(
        [
            sys.executable,
            'train.py',
            QUICKSTART,
            *tiny,
            '--name',
            'gpu',
            '--workspace_root',
            str(tmp_path),
            '--device',
            'cuda',
            '--amp',
            '--max_iterations',
            '6',
            '--batch_size',
            '4',
            '--no-progress',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tmp_path / 'gpu' / 'model' / 'model_latest'
    assert checkpoint.exists()
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    assert state['scaler'] is None or isinstance(state['scaler'], dict)
    result = subprocess.run(
        [
            sys.executable,
            'eval.py',
            QUICKSTART,
            *tiny[:-1],
            '--resume',
            str(checkpoint),
            '--device',
            'cuda',
            '--result_dir',
            str(tmp_path / 'results'),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'precision' in result.stdout and 'recall' in result.stdout, result.stdout[-2000:]
    for script, extra in (
        ('eval.py', ['--result_dir', str(tmp_path / 'fp16')]),
        (
            'demo.py',
            [
                '--image_path',
                os.path.join(ROOT, 'assets', 'images'),
                '--result_dir',
                str(tmp_path / 'demo'),
                '--image_short_side',
                '128',
            ],
        ),
    ):
        result = subprocess.run(
            [
                sys.executable,
                script,
                QUICKSTART,
                *tiny[:-1],
                '--resume',
                str(checkpoint),
                '--device',
                'cuda',
                '--precision',
                'fp16',
                *extra,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (script, result.stderr[-3000:])
    assert json.loads((tmp_path / 'fp16' / 'metrics.json').read_text())['precision'] == 'fp16'
    assert len(detections_by_image(str(tmp_path / 'demo'))) == 5


def test_torchrun_nccl_with_amp_and_sync_bn(tmp_path):
    """DistributedDataParallel on the GPU (NCCL) with --amp and SyncBatchNorm, one process per GPU (up to 2; one
    GPU is enough: a torchrun process always trains under DDP, which failed at the second iteration on the
    backbone's unused fc / smooth before they were frozen)."""
    processes = min(2, torch.cuda.device_count())
    env = dict(os.environ, PYTHONPATH=ROOT)
    tiny = [f'--opt={override}' for override in SMALL + ['Experiment.train.data_loader.num_workers=2']]
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node',
            str(processes),
            'train.py',
            QUICKSTART,
            *tiny,
            '--name',
            'ddp',
            '--workspace_root',
            str(tmp_path),
            '--sync_bn',
            '--amp',
            '--max_iterations',
            '4',
            '--batch_size',
            '4',
            '--no-progress',
            '--no-validate',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / 'ddp' / 'output.log').read_text()
    assert 'on cuda' in log and f'world size {processes}' in log
    state = torch.load(tmp_path / 'ddp' / 'model' / 'model_latest', map_location='cpu', weights_only=True)
    assert state['iteration'] == 4
    assert all(torch.isfinite(value).all() for value in state['model'].values() if value.is_floating_point())
    config, _ = training_batch(SMALL)
    expected = config.build('Experiment.structure.builder').build(torch.device('cpu')).state_dict()
    assert list(state['model']) == list(expected)  # SyncBatchNorm and DDP leave the original's key names


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs 2 GPUs')
def test_num_gpus_starts_one_ddp_process_per_gpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    tiny = [f'--opt={override}' for override in SMALL + ['Experiment.train.data_loader.num_workers=2']]
    result = subprocess.run(
        [
            sys.executable,
            'train.py',
            QUICKSTART,
            *tiny,
            '--name',
            'gpus',
            '--workspace_root',
            str(tmp_path),
            '--num_gpus',
            '2',
            '--sync_bn',
            '--amp',
            '--max_iterations',
            '3',
            '--batch_size',
            '4',
            '--no-progress',
            '--no-validate',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / 'gpus' / 'output.log').read_text()
    assert 'on cuda:0 (world size 2)' in log
    state = torch.load(tmp_path / 'gpus' / 'model' / 'model_latest', map_location='cpu', weights_only=True)
    assert state['iteration'] == 3


def test_num_gpus_beyond_the_visible_gpus_is_refused_in_one_sentence(tmp_path):
    count = torch.cuda.device_count()
    result = subprocess.run(
        [sys.executable, 'train.py', QUICKSTART, '--num_gpus', str(count + 1), '--workspace_root', str(tmp_path)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f'error: --num_gpus {count + 1} needs {count + 1} CUDA devices but {count} are '
        f'visible; lower --num_gpus, or add --device cpu to train in {count + 1} CPU '
        f'processes.'
    )
