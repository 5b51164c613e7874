"""--precision auto: CPU flags, the reduced-precision check stored at export, and the choice it makes."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from concern.cpu import cpu_flags, cpu_has_bf16
from inference.int8_check import (
    INT8_CHECK_KEY,
    INT8_MODEL_KEY,
    MAX_DISAGREEMENT,
    auto_onnx_model,
    measure_precision_change,
    record_int8_check,
)
from inference.precision import auto_torch_precision
from structure.representers import SegDetectorRepresenter


def test_cpu_flags_and_the_torch_choice(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 avx512_vnni\n\nflags\t: other\n')
    flags = cpu_flags(str(cpuinfo))
    assert flags == {'fpu', 'avx512f', 'amx_bf16', 'avx512_vnni'}
    assert cpu_flags(str(tmp_path / 'absent')) == frozenset()
    assert auto_torch_precision('cpu', flags)[0] == 'bf16'
    precision, reason = auto_torch_precision('cpu', {'avx512f', 'avx512_bf16'})
    assert precision == 'fp32' and 'AMX-BF16' in reason
    assert auto_torch_precision('cuda', frozenset())[0] == 'fp16'
    # bf16 instructions at all (train.py --amp warns without them): AVX512-BF16 or AMX-BF16
    assert cpu_has_bf16(flags) and cpu_has_bf16({'avx512_bf16'}) and not cpu_has_bf16({'avx512f', 'avx2'})


def _maps(*boxes, size=(64, 96)):
    """A (1, 1, H, W) probability map with 0.9 inside each (y0, y1, x0, x1) box and 0.05 elsewhere."""
    probability = np.full((1, 1, *size), 0.05, np.float32)
    for y0, y1, x0, x1 in boxes:
        probability[0, 0, y0:y1, x0:x1] = 0.9
    return probability


def test_measure_precision_change_counts_boxes_pixels_and_agreement():
    representer = SegDetectorRepresenter(box_thresh=0.5)
    boxes = [(5, 20, 5, 40), (30, 50, 10, 60), (10, 25, 60, 90)]
    inputs = [np.zeros((1, 3, 64, 96), np.float32)]

    def float_forward(batch):
        return _maps(*boxes)

    same = measure_precision_change(float_forward, float_forward, inputs, representer)
    assert same == {
        'images': 1,
        'boxes': 3,
        'max_probability_difference': 0.0,
        'binary_flip_fraction': 0.0,
        'detection_agreement': 1.0,
    }
    missing = measure_precision_change(float_forward, lambda batch: _maps(*boxes[:2]), inputs, representer)
    assert missing['boxes'] == 3 and abs(missing['detection_agreement'] - 0.8) < 1e-6  # P 1, R 2/3
    assert abs(missing['max_probability_difference'] - 0.85) < 1e-6
    assert abs(missing['binary_flip_fraction'] - 15 * 30 / (64 * 96)) < 1e-8


def _onnx_file(path):
    graph = helper.make_graph(
        [helper.make_node('Identity', ['image'], ['probability'])],
        'g',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info('probability', TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.metadata_props.add(key='dbnet.representer', value='{}')
    onnx.save(model, str(path))
    return str(path)


def test_auto_onnx_model_uses_int8_only_when_checked_and_the_cpu_has_int8_dot_products(tmp_path):
    float_path = _onnx_file(tmp_path / 'model.onnx')
    (tmp_path / 'int8').mkdir()
    int8_path = _onnx_file(tmp_path / 'int8' / 'model.int8.onnx')
    vnni = {'avx512f', 'avx512_vnni'}
    chosen, reason = auto_onnx_model(float_path, vnni)
    assert chosen == float_path and 'names no int8 copy' in reason
    good = {
        'images': 4,
        'boxes': 37,
        'max_probability_difference': 0.04,
        'binary_flip_fraction': 1e-4,
        'detection_agreement': 1.0,
    }
    record_int8_check(float_path, int8_path, good)
    for path in (float_path, int8_path):
        metadata = {entry.key: entry.value for entry in onnx.load(path).metadata_props}
        assert json.loads(metadata[INT8_CHECK_KEY]) == good and metadata['dbnet.representer'] == '{}'
    assert {e.key: e.value for e in onnx.load(float_path).metadata_props}[INT8_MODEL_KEY] == 'int8/model.int8.onnx'
    chosen, reason = auto_onnx_model(float_path, vnni)
    assert chosen == str(tmp_path / 'int8' / 'model.int8.onnx') and 'avx512_vnni' in reason and '37 boxes' in reason
    chosen, reason = auto_onnx_model(float_path, {'avx2'})
    assert chosen == float_path and 'VNNI' in reason
    record_int8_check(float_path, int8_path, {**good, 'detection_agreement': 1 - 2 * MAX_DISAGREEMENT})
    chosen, reason = auto_onnx_model(float_path, vnni)
    assert chosen == float_path and 'below' in reason
    record_int8_check(float_path, int8_path, {**good, 'boxes': 0})
    assert auto_onnx_model(float_path, vnni)[0] == float_path


def test_precision_auto_builds_the_optimised_path_in_the_cpu_choice_and_says_why(capsys):
    """eval.py / demo.py --precision auto on the PyTorch path: resolve_precision picks what auto_torch_precision
    picks for this CPU and prints the reason; the path built is the optimised model in that precision."""
    import torch

    from inference.paths import build_inference_path, choose_path
    from inference.precision import resolve_precision
    from tests.inference.test_onnx_export import db_model

    expected, reason = auto_torch_precision('cpu')
    precision = resolve_precision('auto', 'cpu')
    assert precision == expected and capsys.readouterr().out.strip() == reason
    assert resolve_precision('bf16', 'cpu') == 'bf16' and resolve_precision(None, 'cpu') is None
    path = build_inference_path(
        db_model('resnet18', [64, 128, 256, 512]), torch.device('cpu'), choose_path('cpu', precision=precision)
    )
    assert path.name == 'optimized' and path.precision == expected
    with torch.inference_mode():
        assert path.model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
