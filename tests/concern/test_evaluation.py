"""concern.evaluation.evaluate with thresh_sweep: the grid of (thresh, box_thresh) from one model pass equals
separate evaluations at each thresh, and the result files hold the best pair's detections; the bootstrap
interval over images."""

import numpy as np
import pytest
import torch

from concern.evaluation import bootstrap_interval, evaluate
from structure.measurers.quad_measurer import QuadMeasurer
from structure.representers.seg_detector_representer import SegDetectorRepresenter


def probability_map(seed: int) -> np.ndarray:
    """An 80x112 map with two words joined by a bridge of probability 0.45 (one box at thresh 0.4, two at 0.5),
    a faint word (0.35) and background noise: which thresh scores best depends on the image."""
    rng = np.random.default_rng(seed)
    prob = rng.uniform(0.0, 0.25, (80, 112)).astype(np.float32)
    prob[10:22, 8:38] = rng.uniform(0.6, 0.95)
    prob[10:22, 44:80] = rng.uniform(0.6, 0.95)
    prob[12:20, 38:44] = 0.45
    prob[40:50, 20:60] = 0.35
    return prob


def expanded(x0, y0, x1, y1):
    """The ground truth of a blob of the map: DB's probability map is the word shrunk by
    area * (1 - 0.4 ** 2) / perimeter, and the representer unclips by area * 1.5 / perimeter; this grows the
    blob by the representer's distance, so that a box found on the blob alone matches it."""
    width, height = x1 - x0, y1 - y0
    d = width * height * 1.5 / (2 * (width + height))
    return np.array([[x0 - d, y0 - d], [x1 + d, y0 - d], [x1 + d, y1 + d], [x0 - d, y1 + d]])


WORDS = [expanded(8, 10, 38, 22), expanded(44, 10, 80, 22), expanded(20, 40, 60, 50)]  # joined words, faint one


class FixedMaps(torch.nn.Module):
    """Returns the batch's 'prob' entry (N, 1, H, W) as the probability map."""

    def forward(self, batch, training=False):
        return batch['prob']


def make_loader(count: int):
    samples = [
        {
            'image': torch.zeros(3, 80, 112),
            'prob': torch.from_numpy(probability_map(seed))[None],
            'polygons': WORDS if seed % 2 else WORDS[:2],
            'ignore_tags': [False] * (3 if seed % 2 else 2),
            'shape': (80, 112),
            'filename': f'img_{seed}.jpg',
        }
        for seed in range(count)
    ]

    def collate(items):
        batch = {key: [item[key] for item in items] for key in items[0]}
        return {**batch, 'image': torch.stack(batch['image']), 'prob': torch.stack(batch['prob'])}

    return torch.utils.data.DataLoader(samples, batch_size=2, collate_fn=collate)


def read_results(folder):
    return {path.name: path.read_text() for path in sorted(folder.glob('res_*.txt'))}


def test_thresh_sweep_equals_one_evaluation_per_thresh_and_writes_the_best_pair(tmp_path):
    loader, measurer = make_loader(5), QuadMeasurer()
    representer = SegDetectorRepresenter(thresh=0.3, box_thresh=0.6, max_candidates=100)
    device = torch.device('cpu')
    box_sweep, thresh_sweep = [0.3, 0.5, 0.7], [0.2, 0.3, 0.4, 0.5, 0.6]

    grid = evaluate(
        FixedMaps(), loader, representer, measurer, device, show_progress=False, sweep=box_sweep,
        thresh_sweep=thresh_sweep, result_dir=str(tmp_path / 'grid'),
    )  # fmt: skip
    assert representer.thresh == 0.3 and representer.box_thresh == 0.6  # both restored
    expected = []
    for thresh in thresh_sweep:  # the oracle: a separate evaluation per thresh
        one = SegDetectorRepresenter(thresh=thresh, box_thresh=0.6, max_candidates=100)
        table = evaluate(FixedMaps(), loader, one, measurer, device, show_progress=False, sweep=box_sweep)['sweep']
        expected += [{'thresh': thresh, **row} for row in table]
    assert grid['sweep'] == expected
    fmeasures = {(row['thresh'], row['box_thresh']): row['fmeasure'] for row in expected}
    assert len(set(fmeasures.values())) > 2  # the map makes the thresholds matter
    best = max(expected, key=lambda row: row['fmeasure'])
    assert {key: grid[key] for key in best} == best

    single = evaluate(
        FixedMaps(), loader, SegDetectorRepresenter(thresh=best['thresh'], box_thresh=best['box_thresh']), measurer,
        device, show_progress=False, box_thresh=best['box_thresh'], result_dir=str(tmp_path / 'single'),
    )  # fmt: skip
    assert single['fmeasure'] == grid['fmeasure'] and 'thresh' not in single and 'sweep' not in single
    assert read_results(tmp_path / 'grid') == read_results(tmp_path / 'single') != {}

    # a thresh sweep with one box_thresh scores one row per thresh
    rows = evaluate(
        FixedMaps(), loader, representer, measurer, device, show_progress=False, box_thresh=0.5, thresh_sweep=[0.4, 0.5]
    )['sweep']
    assert [(row['thresh'], row['box_thresh']) for row in rows] == [(0.4, 0.5), (0.5, 0.5)]
    assert rows[1]['fmeasure'] > rows[0]['fmeasure']  # at 0.5 the bridge no longer joins the two words


def test_thresh_sweep_refuses_a_representer_without_thresh_and_on_batch():
    class NoThresh:
        def represent(self, batch, pred, is_output_polygon=False):
            return [], []

    with pytest.raises(ValueError, match='has none'):
        evaluate(FixedMaps(), make_loader(1), NoThresh(), QuadMeasurer(), torch.device('cpu'), thresh_sweep=[0.3])
    with pytest.raises(ValueError, match='on_batch'):
        evaluate(
            FixedMaps(), make_loader(1), SegDetectorRepresenter(), QuadMeasurer(), torch.device('cpu'),
            thresh_sweep=[0.3], on_batch=lambda *args: None,
        )  # fmt: skip


def one_word_images(matched):
    """Per-image results of images with one care word and one detection each, matched or not: P = R = F = the
    share matched."""
    return [
        {'gt_care': 1, 'det_care': 1, 'recall_credit': float(hit), 'precision_credit': float(hit)} for hit in matched
    ]


def test_bootstrap_interval_matches_the_binomial_spread():
    measurer = QuadMeasurer()
    images = one_word_images(np.arange(200) % 2 == 0)  # F 0.5 on 200 images
    interval = bootstrap_interval(images, measurer, resamples=2000)
    assert interval == bootstrap_interval(images, measurer, resamples=2000)  # seeded
    assert interval['images'] == 200 and interval['resamples'] == 2000 and interval['level'] == 0.95
    # the oracle: F is a mean of 200 coin flips, whose 95% interval is 0.5 +- 1.96 * sqrt(0.25 / 200) = +-0.069
    half = 1.96 * np.sqrt(0.25 / 200)
    for key in ('precision', 'recall', 'fmeasure'):
        low, high = interval[key]
        assert low < 0.5 < high
        assert abs((high - low) / 2 - half) < 0.1 * half, (key, low, high)
    # four times the images: half the width; images all alike: no spread at all
    wide = bootstrap_interval(images * 4, measurer, resamples=2000)['fmeasure']
    assert abs((wide[1] - wide[0]) - (interval['fmeasure'][1] - interval['fmeasure'][0]) / 2) < 0.2 * half
    assert bootstrap_interval(one_word_images([True] * 30), measurer, resamples=50)['fmeasure'] == [1.0, 1.0]
    with pytest.raises(ValueError, match='nothing to resample'):
        bootstrap_interval([], measurer, resamples=10)


def test_evaluate_bootstrap_brackets_the_kept_thresholds_metrics():
    loader, measurer = make_loader(6), QuadMeasurer()
    representer = SegDetectorRepresenter(thresh=0.3, box_thresh=0.6, max_candidates=100)
    result = evaluate(
        FixedMaps(), loader, representer, measurer, torch.device('cpu'), show_progress=False,
        sweep=[0.3, 0.5, 0.7], thresh_sweep=[0.3, 0.5], bootstrap=200,
    )  # fmt: skip
    assert (result['thresh'], result['box_thresh']) == (0.5, 0.3) and result['interval']['images'] == 6
    for key in ('precision', 'recall', 'fmeasure'):
        low, high = result['interval'][key]
        assert low <= result[key] <= high
    assert 'interval' not in evaluate(
        FixedMaps(), loader, representer, measurer, torch.device('cpu'), show_progress=False
    )
