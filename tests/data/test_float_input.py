"""The network's input equals the original's preprocessing to the last bit, on a real photo.

The original reads every image as float32 (``cv2.imread(path, cv2.IMREAD_COLOR).astype('float32')``),
resizes the float image with ``cv2.resize`` (bilinear) and normalises with ``(img - mean) / 255``. The
oracle below is that preprocessing written out by hand; the project's demo (``Detector``), evaluation
(``ImageDataset`` with the experiment files' validation processes) and ONNX Runtime paths must give the
same tensor (max abs difference 0).
"""

import math
import os

import cv2
import numpy as np
import pytest

from concern.runtime import load_experiment_for_inference
from data.image_io import read_image
from inference.detector import Detector
from tests import ROOT

MEAN = np.array([122.67891434, 116.66876762, 104.00698793])


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    """skimage's astronaut photo as a JPEG of 500x371 (no side a multiple of 32), in the DB layout."""
    skimage_data = pytest.importorskip('skimage.data')
    root = tmp_path_factory.mktemp('photo')
    image = cv2.resize(
        cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (500, 371), interpolation=cv2.INTER_AREA
    )
    for split in ('train', 'test'):
        os.makedirs(root / f'{split}_images')
        os.makedirs(root / f'{split}_gts')
        cv2.imwrite(str(root / f'{split}_images' / 'img_1.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (root / f'{split}_list.txt').write_text('img_1.jpg\n')
        line = '10,10,200,10,200,60,10,60,WORD\n'
        (root / f'{split}_gts' / ('gt_img_1.txt' if split == 'test' else 'img_1.jpg.txt')).write_text(line)
    return root


def original_input(path, width, height):
    """The original's network input for ``path`` resized to width x height: (3, H, W) float32."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR).astype('float32')
    image = cv2.resize(image, (width, height))
    image -= MEAN
    image /= 255.0
    return image.transpose(2, 0, 1)


def original_demo_size(path, short_side):
    """The original demo's resize_image rule: (width, height)."""
    height, width = cv2.imread(str(path), cv2.IMREAD_COLOR).shape[:2]
    if height < width:
        return int(math.ceil(short_side / height * width / 32) * 32), short_side
    return short_side, int(math.ceil(short_side / width * height / 32) * 32)


def captured_inputs(detector, images):
    inputs = []

    def forward(batch):
        inputs.append(batch.copy())
        return np.zeros((batch.shape[0], 1) + batch.shape[2:], np.float32)

    detector.forward = forward
    detector.detect(images)
    return inputs


def test_demo_input_is_the_originals(photo):
    path = photo / 'test_images' / 'img_1.jpg'
    detector = Detector(None, representer=None, image_short_side=736)
    detector.represent = lambda probability, image: ([], [])
    (got,) = captured_inputs(detector, [read_image(str(path))])
    expected = original_input(path, *original_demo_size(path, 736))
    assert got.shape == (1,) + expected.shape == (1, 3, 736, 992)
    assert np.abs(got[0] - expected).max() == 0
    # a uint8 image (cv2.imread without astype) gets the same input: the detector converts before resizing
    (got_uint8,) = captured_inputs(detector, [cv2.imread(str(path))])
    assert np.abs(got_uint8[0] - expected).max() == 0


@pytest.mark.parametrize(
    'experiment, size',
    [
        ('experiments/seg_detector/ic15_resnet18_deform_thre.yaml', (1280, 736)),  # fixed 1280x736
        ('experiments/seg_detector/totaltext_resnet50_deform_thre.yaml', (math.ceil(500 * 800 / 371 / 32) * 32, 800)),
        ('experiments/seg_detector/td500_resnet18_deform_thre.yaml', (math.ceil(500 * 736 / 371 / 32) * 32, 736)),
    ],
)
def test_eval_input_is_the_originals(photo, experiment, size, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = load_experiment_for_inference(
        experiment, [f"validate_data.data_dir=['{photo}']", f"validate_data.data_list=['{photo / 'test_list.txt'}']"]
    )
    sample = config.build('validate_data')[0]
    expected = original_input(photo / 'test_images' / 'img_1.jpg', *size)
    assert tuple(sample['image'].shape) == expected.shape
    assert np.abs(sample['image'].numpy() - expected).max() == 0


def test_onnx_input_is_the_originals(photo, tmp_path):
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    from onnx import TensorProto, helper

    from inference.onnx_runtime import OnnxDetector
    from structure.representers import SegDetectorRepresenter

    graph = helper.make_graph(
        [
            helper.make_node('ReduceMean', ['image'], ['mean'], axes=[1], keepdims=1),
            helper.make_node('Sigmoid', ['mean'], ['prob']),
        ],
        'tiny',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
        [helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 1, 'H', 'W'])],
    )
    model_path = str(tmp_path / 'tiny.onnx')
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)]), model_path)
    detector = OnnxDetector(model_path, representer=SegDetectorRepresenter(), image_short_side=736)
    run = detector.forward
    inputs = []
    detector.forward = lambda batch: (inputs.append(batch.copy()), run(batch))[1]
    path = photo / 'test_images' / 'img_1.jpg'
    detector.detect([read_image(str(path))])
    expected = original_input(path, *original_demo_size(path, 736))
    assert np.abs(inputs[0][0] - expected).max() == 0
