"""Result files: written in the ICDAR format and parsed back to the same polygons; scorer end to end."""

import json
import zipfile

import numpy as np
import pytest

from concern.result_files import parse_gt_text, read_result_file, result_filename, write_json_results, write_result_file
from tools.score_results import main as score_main
from tools.score_results import sample_key


def test_result_file_round_trip(tmp_path):
    polygons = [
        np.array([[10, 10], [50, 10], [50, 30], [10, 30]]),
        np.array([[5, 5], [9, 5], [12, 8], [9, 11], [5, 11]]),
    ]
    path = tmp_path / result_filename('/data/test_images/img_7.jpg')
    assert path.name == 'res_img_7.txt'
    write_result_file(str(path), polygons, [0.91, 0.5])
    read, scores = read_result_file(str(path))
    assert [p.tolist() for p in read] == [p.tolist() for p in polygons]
    assert scores == [pytest.approx(0.91), pytest.approx(0.5)]
    write_result_file(str(path), polygons)  # no score column
    read, scores = read_result_file(str(path))
    assert scores == [None, None] and [p.tolist() for p in read] == [p.tolist() for p in polygons]


def test_counter_clockwise_input_is_written_clockwise(tmp_path):
    path = tmp_path / 'res_a.txt'
    write_result_file(str(path), [np.array([[0.4, 0], [0, 10], [10, 10], [10, 0]])])
    assert path.read_text() == '10,0,10,10,0,10,0,0\n'


def test_ground_truth_lines():
    text = (
        '\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\n1,1,5,1,5,5,1,5,###\n1,1,5,1,5,5,1,5,a,b\n'
        '1,1,5,1,5,5,1,5,2015\n0,0,4,0,6,2,4,4,0,4\n'
    )
    entries = parse_gt_text(text)
    assert [e['text'] for e in entries] == ['Genaxis Theatre', '###', 'a,b', '2015', '']
    assert [e['ignore'] for e in entries] == [False, True, False, False, False]
    assert entries[4]['points'].shape == (5, 2)
    with pytest.raises(ValueError, match='line 1'):
        parse_gt_text('1,2,3,4,x')


def test_json_writer_handles_numpy(tmp_path):
    path = tmp_path / 'out' / 'results.json'
    write_json_results(str(path), {'f': np.float32(0.5), 'boxes': [np.arange(4)]})
    assert '"boxes"' in path.read_text()


def test_scorer_on_folder_and_zip(tmp_path, capsys):
    gt_dir, det_dir = tmp_path / 'gt', tmp_path / 'det'
    gt_dir.mkdir(), det_dir.mkdir()
    (gt_dir / 'gt_img_1.txt').write_text('0,0,10,0,10,10,0,10,word\n20,0,30,0,30,10,20,10,###\n')
    (gt_dir / 'gt_img_2.txt').write_text('0,0,10,0,10,10,0,10,other\n')
    (det_dir / 'res_img_1.txt').write_text('0,0,10,0,10,10,0,10,0.9\n21,0,30,0,30,10,21,10,0.8\n')
    assert score_main(['--gt', str(gt_dir), '--det', str(det_dir), '--json', str(tmp_path / 'plain.json')]) == 0
    metrics = json.loads((tmp_path / 'plain.json').read_text())['metrics']
    assert (metrics['precision'], metrics['recall']) == (1.0, 0.5)  # img_2 has no result file: a miss
    with zipfile.ZipFile(tmp_path / 'det.zip', 'w') as archive:
        archive.write(det_dir / 'res_img_1.txt', 'res_img_1.txt')
    assert (
        score_main(
            [
                '--gt',
                str(gt_dir),
                '--det',
                str(tmp_path / 'det.zip'),
                '--protocol',
                'deteval',
                '--json',
                str(tmp_path / 'scores.json'),
            ]
        )
        == 0
    )
    zipped = json.loads((tmp_path / 'scores.json').read_text())['metrics']
    assert (zipped['precision'], zipped['recall']) == (1.0, 0.5)
    assert sample_key('poly_gt_img5.txt') == sample_key('img5.txt') == 'img5'


def test_draw_polygons_outlines_without_touching_the_input():
    from structure.visualizers import draw_polygons

    image = np.zeros((40, 60, 3), dtype=np.uint8)
    drawn = draw_polygons(image, [np.array([[10, 10], [50, 10], [50, 30], [10, 30]])], [0.9], thickness=1)
    assert image.sum() == 0
    assert tuple(drawn[10, 30]) == (0, 0, 255) and tuple(drawn[20, 30]) == (0, 0, 0)
