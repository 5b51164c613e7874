"""The training loop: exact resumption, DDP equivalence with one process, non-finite steps, signals."""

import json
import os
import time

import numpy as np
import torch
import torch.multiprocessing as mp

from concern.checkpoint_io import load_checkpoint
from concern.distributed import DistributedContext, free_port
from concern.log import Logger
from experiment import TrainSettings
from training import DecayLearningRate, ModelSaver, OptimizerScheduler
from training.trainer import Trainer, TrainOptions


class NoisyDataset(torch.utils.data.Dataset):
    """Fixed inputs plus augmentation noise drawn from NumPy's global generator (as processes do)."""

    def __init__(self, size=10):
        generator = np.random.RandomState(0)
        self.x = generator.randn(size, 4).astype(np.float32)
        self.y = generator.randn(size, 1).astype(np.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        noise = np.random.normal(scale=0.1, size=4).astype(np.float32)
        return {'image': torch.from_numpy(self.x[index] + noise), 'target': torch.from_numpy(self.y[index])}


class ToyModel(torch.nn.Module):
    """forward(batch, training) -> (loss, pred, metrics), the SegDetectorModel contract; no BatchNorm."""

    def __init__(self, poison_steps=()):
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        self.poison_steps = set(poison_steps)
        self.calls = 0

    def forward(self, batch, training=True):
        pred = self.net(batch['image'])
        self.calls += 1
        loss = ((pred - batch['target']) ** 2).mean()
        if self.calls in self.poison_steps:
            loss = loss * float('nan')
        return loss, {'binary': pred}, {'mse': loss.detach()}


class Loader:
    def __init__(self, dataset, batch_size, shuffle=True):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.num_workers, self.drop_last = 0, True
        self.collate_fn = torch.utils.data.default_collate


def make_trainer(
    workspace,
    model=None,
    batch_size=2,
    shuffle=True,
    context=None,
    max_iterations=None,
    epochs=3,
    max_nonfinite=10,
    save_interval=1000,
    ema_decay=0.0,
):
    model = model or ToyModel()
    scheduler = OptimizerScheduler(
        'SGD', {'lr': 0.05, 'momentum': 0.9, 'weight_decay': 1e-4}, DecayLearningRate(lr=0.05, epochs=epochs)
    )
    settings = TrainSettings(
        Loader(NoisyDataset(), batch_size, shuffle),
        epochs=epochs,
        scheduler=scheduler,
        model_saver=ModelSaver('model', save_interval),
        ema_decay=ema_decay,
    )
    context = context or DistributedContext()
    if context.is_distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    options = TrainOptions(
        workspace=str(workspace),
        validate=False,
        seed=3,
        show_progress=False,
        max_iterations=max_iterations,
        max_nonfinite=max_nonfinite,
    )
    logger = Logger(tensorboard=False).setup(str(workspace), enabled=context.is_main)
    return Trainer(model, settings, None, None, logger, options, context, torch.device('cpu'))


def weights(trainer):
    module = trainer.model.module if hasattr(trainer.model, 'module') else trainer.model
    return {key: value.clone() for key, value in module.state_dict().items()}


def test_resume_mid_epoch_reaches_the_same_weights(tmp_path):
    full = make_trainer(tmp_path / 'full', max_iterations=8)
    assert full.train() == 'max_iterations'

    first = make_trainer(tmp_path / 'split', max_iterations=3)
    first.train()
    latest = tmp_path / 'split' / 'model' / 'model_latest'
    assert latest.exists()
    state = load_checkpoint(str(latest))
    assert state['iteration'] == 3 and state['epoch'] == 0 and state['epoch_iteration'] == 3

    second = make_trainer(tmp_path / 'split', max_iterations=8)
    second.resume(str(latest))
    assert second.step == 3
    second.train()
    assert second.step == 8 and second.epoch == 1  # 5 steps per epoch
    assert second.optimizer.param_groups[0]['lr'] == full.optimizer.param_groups[0]['lr']
    for key, value in weights(full).items():
        torch.testing.assert_close(weights(second)[key], value, rtol=0, atol=1e-7)


def test_finishing_writes_final_and_epoch_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2, save_interval=4)
    assert trainer.train() == 'finished'
    names = sorted(os.listdir(tmp_path / 'model'))
    assert names == [
        'final',
        'model_epoch_0_minibatch_4',
        'model_epoch_1_minibatch_8',
        'model_epoch_2_minibatch_10',
        'model_latest',
    ]
    assert load_checkpoint(str(tmp_path / 'model' / 'final'))['iteration'] == 10


class NarrowRangeGradient(torch.autograd.Function):
    """Identity whose backward overflows to inf above ``limit``, as float16 gradients do above 65504."""

    @staticmethod
    def forward(ctx, x, limit):
        ctx.limit = limit
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.where(grad.abs() > ctx.limit, torch.full_like(grad, float('inf')), grad), None


class NarrowRangeModel(ToyModel):
    def forward(self, batch, training=True):
        pred = NarrowRangeGradient.apply(self.net(batch['image']), 64.0)
        loss = ((pred - batch['target']) ** 2).mean()
        return loss, {'binary': pred}, {'mse': loss.detach()}


def test_mixed_precision_overflows_lower_the_scale_without_counting_as_nonfinite(tmp_path):
    """The GradScaler starts at 2**16: the first steps overflow until the scale fits, more than max_nonfinite
    of them here; training goes on and learns, and the lowered scale is saved."""
    trainer = make_trainer(tmp_path, model=NarrowRangeModel(), max_iterations=25, epochs=5, max_nonfinite=3)
    trainer.scaler = torch.amp.GradScaler('cpu', init_scale=2.0**16)
    before = weights(trainer)
    assert trainer.train() == 'max_iterations'
    assert trainer.overflow_steps > 3 and trainer.skipped_steps == 0
    assert 1.0 < trainer.scaler.get_scale() < 2.0**16 / 2**3
    assert any(not torch.equal(before[key], value) for key, value in weights(trainer).items())
    saved = load_checkpoint(str(tmp_path / 'model' / 'model_latest'))['scaler']
    assert saved['scale'] == trainer.scaler.get_scale()


def test_a_gradient_that_overflows_at_every_scale_is_nonfinite(tmp_path):
    class AlwaysInf(NarrowRangeModel):
        def forward(self, batch, training=True):
            pred = NarrowRangeGradient.apply(self.net(batch['image']), 0.0)
            loss = ((pred - batch['target']) ** 2).mean()
            return loss, {'binary': pred}, {}

    trainer = make_trainer(tmp_path, model=AlwaysInf(), max_nonfinite=2, epochs=20)
    trainer.scaler = torch.amp.GradScaler('cpu', init_scale=4.0)
    assert trainer.train() == 'nonfinite'
    assert trainer.overflow_steps == 2 and trainer.skipped_steps == 2  # scale 4, 2 overflow; at 1 non-finite


def test_nonfinite_steps_are_skipped_then_training_stops(tmp_path):
    trainer = make_trainer(tmp_path, model=ToyModel(poison_steps={2}), max_iterations=4)
    assert trainer.train() == 'max_iterations'
    assert trainer.skipped_steps == 1
    assert all(torch.isfinite(value).all() for value in weights(trainer).values())

    stuck = make_trainer(tmp_path / 'stuck', model=ToyModel(poison_steps=set(range(1, 100))), max_nonfinite=3)
    assert stuck.train() == 'nonfinite'
    assert stuck.step == 3
    assert not (tmp_path / 'stuck' / 'model' / 'model_latest').exists()  # nothing bad was saved


def _ddp_worker(rank, world_size, port, workspace, queue, poisoned_rank=None):
    os.environ.update(
        MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo')
    try:
        model = ToyModel(poison_steps={2} if rank == poisoned_rank else ())
        trainer = make_trainer(
            workspace,
            model=model,
            batch_size=4,
            shuffle=False,
            max_iterations=4,
            context=DistributedContext(rank, world_size, rank),
        )
        trainer.train()
        queue.put((rank, {key: value.numpy() for key, value in weights(trainer).items()}, trainer.skipped_steps))
    finally:
        torch.distributed.destroy_process_group()


def run_two_process_gloo(workspace, poisoned_rank=None):
    """{rank: (weights, skipped steps)} of a 2-process gloo DDP run of 4 iterations with batch 4."""
    context = mp.get_context('spawn')
    queue = context.Queue()
    port = free_port()
    processes = [
        context.Process(target=_ddp_worker, args=(rank, 2, port, str(workspace), queue, poisoned_rank))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    try:
        results = {rank: (result, skipped) for rank, result, skipped in (queue.get(timeout=120) for _ in processes)}
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    return results


def test_two_process_gloo_matches_one_process_with_the_combined_batch(tmp_path):
    single = make_trainer(tmp_path / 'single', batch_size=4, shuffle=False, max_iterations=4)
    single.train()
    results = run_two_process_gloo(tmp_path / 'ddp')
    for key, value in weights(single).items():
        np.testing.assert_allclose(results[0][0][key], value.numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(results[0][0][key], results[1][0][key])
    assert (tmp_path / 'ddp' / 'model' / 'model_latest').exists()


def test_a_nonfinite_loss_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    """Rank 1's loss is NaN at iteration 2: both ranks skip that step (a rank skipping backward alone would leave
    the other waiting in DDP's gradient all-reduce) and end equal to one process that skipped it."""
    single = make_trainer(
        tmp_path / 'single', model=ToyModel(poison_steps={2}), batch_size=4, shuffle=False, max_iterations=4
    )
    single.train()
    results = run_two_process_gloo(tmp_path / 'ddp', poisoned_rank=1)
    assert results[0][1] == results[1][1] == single.skipped_steps == 1
    for key, value in weights(single).items():
        np.testing.assert_allclose(results[0][0][key], value.numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(results[0][0][key], results[1][0][key])


def test_a_final_iteration_already_saved_is_not_written_again(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2, save_interval=5)  # 10 iterations; saves at 5 and 10
    assert trainer.train() == 'finished'
    assert sorted(os.listdir(tmp_path / 'model')) == [
        'final',
        'model_epoch_0_minibatch_5',
        'model_epoch_1_minibatch_10',
        'model_latest',
    ]


class SlowStartModel(ToyModel):
    """A ToyModel whose first ``slow_steps`` forward passes each take ``delay`` seconds."""

    def __init__(self, slow_steps, delay):
        super().__init__()
        self.slow_steps, self.delay = slow_steps, delay

    def forward(self, batch, training=True):
        if self.calls < self.slow_steps:
            time.sleep(self.delay)
        return super().forward(batch, training)


def test_logged_images_per_second_are_those_since_the_last_log_line(tmp_path):
    """4 slow steps (0.2 s each), then 4 fast ones in the same epoch: the second log line reports the fast rate, not
    the average (which would be below twice the first)."""
    trainer = make_trainer(tmp_path, model=SlowStartModel(4, 0.2), batch_size=1, max_iterations=8)
    trainer.logger.log_interval = 4
    assert trainer.train() == 'max_iterations'
    records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    rates = [record['images_per_s'] for record in records if record.get('split') == 'train']
    assert len(rates) == 2
    assert 2 < rates[0] <= 1 / 0.2  # one image in at least 0.2 s
    assert rates[1] > 4 * rates[0]
