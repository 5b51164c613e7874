"""concern/result_log.py: lines are whole, a cut last line is cut off on reopening, done images are known across the
process files, and other settings are refused in one sentence without touching the folder."""

import json

import pytest

from concern.errors import UserError
from concern.result_log import ResultLog, detections_by_image, read_results

SETTINGS = {'model': 'm.pth', 'box_thresh': 0.6}


def record(name):
    return {'image': name, 'height': 1, 'width': 2, 'detections': [{'points': [[0, 0], [1, 0], [1, 1]], 'score': 0.9}]}


def test_lines_are_whole_and_a_cut_last_line_is_cut_off(tmp_path):
    with ResultLog(str(tmp_path), SETTINGS) as log:
        log.write(record('a.jpg'))
        log.write({'image': 'bad.jpg', 'error': 'cannot read'})
    path = tmp_path / 'results.jsonl'
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"image": "b.jpg", "hei')  # a process killed in the middle of a write
    with ResultLog(str(tmp_path), SETTINGS) as log:
        assert log.done == {'a.jpg', 'bad.jpg'}
        assert path.read_bytes() == whole
        log.write(record('b.jpg'))
    assert [r['image'] for r in read_results(str(tmp_path))] == ['a.jpg', 'bad.jpg', 'b.jpg']
    assert set(detections_by_image(str(tmp_path))) == {'a.jpg', 'b.jpg'}
    assert len({r['run'] for r in read_results(str(tmp_path))}) == 1


def test_every_process_file_counts_and_each_rank_writes_its_own(tmp_path):
    with ResultLog(str(tmp_path), SETTINGS, rank=0, world_size=2) as first:
        first.write(record('a.jpg'))
    with ResultLog(str(tmp_path), SETTINGS, rank=1, world_size=2) as second:
        second.write(record('b.jpg'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['results.rank0.jsonl', 'results.rank1.jsonl', 'run.json']
    assert ResultLog(str(tmp_path), SETTINGS).done == {'a.jpg', 'b.jpg'}  # a later run on one process


@pytest.mark.parametrize('damage', ['settings', 'line'])
def test_other_settings_are_refused_and_nothing_changes(tmp_path, damage):
    with ResultLog(str(tmp_path), SETTINGS) as log:
        log.write(record('a.jpg'))
    if damage == 'line':  # run.json gone, a line of another run left
        (tmp_path / 'run.json').unlink()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(UserError) as error:
        ResultLog(str(tmp_path), {**SETTINGS, 'box_thresh': 0.3})
    message = str(error.value)
    assert '\n' not in message and '--result_dir' in message
    if damage == 'settings':
        assert 'box_thresh 0.6 there, 0.3 here' in message
    else:
        assert 'results.jsonl' in message and 'line 1' in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert json.loads((tmp_path / 'results.jsonl').read_text())['image'] == 'a.jpg'
