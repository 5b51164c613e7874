"""The ONNX Runtime predictor: no torch on its import path, the same detections as the PyTorch Detector on a
synthetic image, the representer read from the file's metadata, and demo.py --onnx."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from concern.result_log import detections_by_image
from tests import ROOT
from tests.inference.test_onnx_export import db_model

IMAGE = os.path.join(ROOT, 'assets', 'images', 'synthetic_1.jpg')
SHORT_SIDE = 128


def test_predictor_imports_no_torch():
    code = (
        'import sys; import inference.onnx_runtime, data.image_io, structure.visualizers, concern.result_files; '
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))"
    )
    subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True)


def separating_threshold(probability, foreground=0.25):
    """A binarisation threshold far (> 1e-4) from every map value, so that maps which differ by float rounding
    (~1e-5) binarise identically: the middle of a gap of > 2e-4 between sorted map values, the one leaving
    about ``foreground`` of the pixels above it (enough to draw several contours)."""
    values = np.unique(probability)
    gaps = np.diff(values)
    candidates = [(values[i] + values[i + 1]) / 2 for i in np.flatnonzero(gaps > 2e-4)]
    assert candidates, 'the map has no gap between its values wide enough to separate them'
    fractions = [float((probability > c).mean()) for c in candidates]
    best = int(np.argmin(np.abs(np.asarray(fractions) - foreground)))
    assert 0.05 < fractions[best] < 0.6, fractions[best]
    return float(candidates[best])


def readable_map_model(model, image):
    """Make a random model's probability map usable for drawing contours: constant 2x2 deconvolution
    kernels in the binarize branch (no checkerboard, blobs of 4x4 pixels) and its logits on ``image``
    rescaled to median 0, standard deviation 3 (values spread over (0, 1))."""
    binarize = model.model.module.decoder.binarize
    with torch.no_grad():
        for module in binarize:
            if isinstance(module, torch.nn.ConvTranspose2d):
                module.weight.copy_(module.weight.mean(dim=(2, 3), keepdim=True))
        logit = torch.logit(model(image, training=False))
        median, scale = logit.median(), 3 / logit.std()
        binarize[6].weight.mul_(scale)
        binarize[6].bias.copy_(scale * (binarize[6].bias - median))
    return model


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    pytest.importorskip('onnxruntime')
    from inference.detector import Detector, torch_forward
    from inference.onnx_export import export_onnx
    from inference.onnx_runtime import REPRESENTER_METADATA_KEY
    from structure.representers import SegDetectorRepresenter

    model = db_model('resnet18', [64, 128, 256, 512])
    image = cv2.imread(IMAGE)
    detector = Detector(torch_forward(model, torch.device('cpu')), SegDetectorRepresenter(), SHORT_SIDE)
    tensor = torch.from_numpy(detector.preprocess(image))[None]
    readable_map_model(model, tensor)
    with torch.no_grad():
        probability = model(tensor, training=False)[0, 0].numpy()
    thresh = separating_threshold(probability)
    arguments = dict(thresh=thresh, box_thresh=0.0, max_candidates=1000, min_size=1, unclip_ratio=1.5)
    path = str(tmp_path_factory.mktemp('onnx') / 'model.onnx')
    export_onnx(model, path, example_size=(64, 64), metadata={REPRESENTER_METADATA_KEY: json.dumps(arguments)})
    detector.representer = SegDetectorRepresenter(**arguments)
    return path, image, detector, arguments


def assert_same_detections(got, expected):
    polygons, scores = got
    expected_polygons, expected_scores = expected
    assert len(polygons) == len(expected_polygons) >= 5
    for polygon, expected_polygon in zip(polygons, expected_polygons):
        np.testing.assert_array_equal(polygon, expected_polygon)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-4)


def test_onnx_detector_gives_the_pytorch_detections(exported):
    from inference.onnx_runtime import OnnxDetector

    path, image, torch_detector, arguments = exported
    expected = torch_detector.detect([image])[0]
    onnx_detector = OnnxDetector(path, image_short_side=SHORT_SIDE)
    assert onnx_detector.representer.thresh == arguments['thresh']  # from the file's metadata
    assert onnx_detector.representer.min_size == 1
    assert_same_detections(onnx_detector.detect([image])[0], expected)
    # batched with a flipped copy of the same size: each image keeps its own detections
    flipped = np.ascontiguousarray(image[:, ::-1])
    onnx_detector.batch_size = 2
    both = onnx_detector.detect([image, flipped])
    assert_same_detections(both[0], expected)
    assert_same_detections(both[1], torch_detector.detect([flipped])[0])


def test_onnx_detector_overrides_and_errors(exported, tmp_path):
    from inference.onnx_runtime import OnnxDetector

    path = exported[0]
    detector = OnnxDetector(path, box_thresh=0.9, max_candidates=7)
    assert (detector.representer.box_thresh, detector.representer.max_candidates) == (0.9, 7)
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(b'not a model')
    with pytest.raises(RuntimeError, match='broken.onnx'):
        OnnxDetector(str(broken))


def test_demo_onnx_writes_the_pytorch_results(exported, tmp_path):
    import demo

    path, image, torch_detector, arguments = exported
    status = demo.main(
        [
            '--onnx',
            path,
            '--image_path',
            IMAGE,
            '--result_dir',
            str(tmp_path),
            '--image_short_side',
            str(SHORT_SIDE),
            '--box_thresh',
            '0',
            '--thresh',
            str(arguments['thresh']),
        ]
    )
    assert status == 0
    detections = detections_by_image(str(tmp_path))[IMAGE]
    polygons, scores = torch_detector.detect([image])[0]
    assert [d['points'] for d in detections] == [p.tolist() for p in polygons]
    assert (tmp_path / 'res_synthetic_1.txt').exists()


def test_demo_onnx_pipeline_on_a_folder_writes_the_pytorch_results_in_order(exported, tmp_path):
    """--pipeline (post-processing in a second thread) with batches of 2 over a folder: every image gets the
    PyTorch Detector's detections, whatever the order the threads finish in."""
    import demo

    path, image, torch_detector, arguments = exported
    folder = tmp_path / 'images'
    folder.mkdir()
    variants = {'a.png': image, 'b.png': image[:, ::-1], 'c.png': image[::-1], 'd.png': image[:, : image.shape[1] // 2]}
    for name, variant in variants.items():
        cv2.imwrite(str(folder / name), np.ascontiguousarray(variant))
    out = tmp_path / 'out'
    status = demo.main(
        [
            '--onnx',
            path,
            '--image_path',
            str(folder),
            '--result_dir',
            str(out),
            '--pipeline',
            '--batch_size',
            '2',
            '--image_short_side',
            str(SHORT_SIDE),
            '--box_thresh',
            '0',
            '--thresh',
            str(arguments['thresh']),
        ]
    )
    assert status == 0
    results = detections_by_image(str(out))
    assert sorted(results) == [str(folder / name) for name in sorted(variants)]
    counts = set()
    for name in variants:
        polygons, scores = torch_detector.detect([cv2.imread(str(folder / name))])[0]
        assert [d['points'] for d in results[str(folder / name)]] == [p.tolist() for p in polygons]
        counts.add(len(polygons))
    assert len(counts) > 1  # the images' detections differ, so a mix-up would show


def test_convert_to_onnx_writes_a_checked_model_and_an_int8_copy_demo_runs(tmp_path, capsys):
    """convert_to_onnx.py on a quick-start checkpoint: the check passes, --int8 writes a calibrated QLinearConv
    model that keeps the representer metadata, and demo.py --onnx runs it; --int8 without images is refused."""
    import onnx

    import convert_to_onnx
    import demo
    from concern.runtime import load_experiment_for_inference

    quickstart = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
    small = ['Experiment.structure.builder.model_args.decoder_args.inner_channels=32']
    structure = load_experiment_for_inference(quickstart, small).build('Experiment.structure')
    checkpoint = tmp_path / 'weights.pth'
    torch.save(structure.builder.build(torch.device('cpu')).state_dict(), checkpoint)
    calibration = tmp_path / 'calibration'
    calibration.mkdir()
    image = cv2.imread(IMAGE)
    cv2.imwrite(str(calibration / 'a.jpg'), image)
    # a portrait image besides the landscape one: inputs of two shapes (the histogram calibrators need one)
    cv2.imwrite(str(calibration / 'b.png'), np.ascontiguousarray(image[:, ::-1].transpose(1, 0, 2)))
    (calibration / 'broken.jpg').write_text('not an image')
    common = [
        quickstart,
        '--resume',
        str(checkpoint),
        '--output',
        str(tmp_path / 'model.onnx'),
        '--example_size',
        '64',
        '96',
        '--opt',
        small[0],
    ]
    with pytest.raises(SystemExit):
        convert_to_onnx.main(common + ['--int8', str(tmp_path / 'int8.onnx')])
    assert '--calibration_images' in capsys.readouterr().err
    status = convert_to_onnx.main(
        common
        + ['--int8', str(tmp_path / 'int8.onnx'), '--calibration_images', str(calibration), '--image_short_side', '64']
    )
    output = capsys.readouterr().out
    assert status == 0 and 'max abs difference' in output and 'calibrated on 2 images' in output
    quantized = onnx.load(str(tmp_path / 'int8.onnx'))
    assert 'QLinearConv' in {node.op_type for node in quantized.graph.node}
    metadata = {entry.key: entry.value for entry in quantized.metadata_props}
    assert json.loads(metadata['dbnet.representer'])['box_thresh'] == structure.representer.box_thresh
    check = json.loads(metadata['dbnet.int8_check'])  # the int8 vs fp32 comparison --precision auto reads
    assert check['images'] == 2 and 0 < check['max_probability_difference'] < 1
    assert 'int8 check on the 2 calibration images' in output
    float_metadata = {entry.key: entry.value for entry in onnx.load(str(tmp_path / 'model.onnx')).metadata_props}
    assert float_metadata['dbnet.int8_model'] == 'int8.onnx' and float_metadata['dbnet.int8_check'] == json.dumps(check)
    status = demo.main(
        ['--onnx', str(tmp_path / 'model.onnx'), '--precision', 'auto', '--image_path', IMAGE]
        + ['--image_short_side', '64', '--result_dir', str(tmp_path / 'auto')]
    )
    assert status == 0 and 'precision auto: ' in capsys.readouterr().out
    status = demo.main(
        [
            '--onnx',
            str(tmp_path / 'int8.onnx'),
            '--image_path',
            IMAGE,
            '--result_dir',
            str(tmp_path / 'out'),
            '--image_short_side',
            '64',
        ]
    )
    assert status == 0 and (tmp_path / 'out' / 'results.jsonl').exists()
