"""QuadMeasurer: score filtering, batches of lists, plain-float gathering."""

import numpy as np
import pytest

from structure.measurers import QuadMeasurer


def square(x, size=10):
    return np.array([[x, 0], [x + size, 0], [x + size, size], [x, size]], dtype=np.float32)


def batch_of(*images):
    return {
        'polygons': [[square(x) for x in xs] for xs, _ in images],
        'ignore_tags': [np.array(tags, dtype=bool) for _, tags in images],
    }


def test_box_mode_filters_by_score_and_gathers_plain_floats():
    measurer = QuadMeasurer()
    batch = batch_of(([0, 50], [False, False]), ([0], [True]))
    output = (
        [[square(0).astype(np.int32), square(50).astype(np.int32)], [square(100).astype(np.int32)]],
        [[0.9, 0.5], [0.8]],
    )
    raw = measurer.validate_measure(batch, output, box_thresh=0.6)
    assert [r['matched'] for r in raw] == [1, 0] and raw[0]['misses'] == [1]
    metrics = measurer.gather_measure([raw])
    assert set(metrics) == {'precision', 'recall', 'fmeasure'}
    assert all(type(v) is float for v in metrics.values())
    assert metrics['recall'] == pytest.approx(0.5) and metrics['precision'] == pytest.approx(0.5)
    # polygon mode keeps every polygon, whatever its score (as the original)
    raw = measurer.validate_measure(batch, output, is_output_polygon=True, box_thresh=0.6)
    assert raw[0]['matched'] == 2
    assert measurer.gather_measure(raw)['recall'] == 1.0


@pytest.mark.parametrize('protocol', ['deteval', 'icdar2013', 'tiou'])
def test_other_protocols_by_name(protocol):
    measurer = QuadMeasurer(protocol=protocol)
    raw = measurer.validate_measure(
        batch_of(
            ([0], [False]),
        ),
        ([[square(0)]], [[1.0]]),
    )
    assert measurer.gather_measure([raw]) == {'precision': 1.0, 'recall': 1.0, 'fmeasure': 1.0}


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match='protocol'):
        QuadMeasurer(protocol='voc')
    with pytest.raises(KeyError, match='ignore_tags'):
        QuadMeasurer().validate_measure({'polygons': [[]]}, ([[]], [[]]))
