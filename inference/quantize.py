"""Int8 quantisation of an exported ONNX model with ONNX Runtime's quantiser, and its calibration inputs.

quantize_onnx('model.onnx', 'model.int8.onnx', mode='static', calibration_images=[...],
              quant_format='qoperator', calibrate_method='percentile')
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np

__all__ = [
    'quantize_onnx',
    'calibration_inputs',
    'crop_to_common_size',
    'QUANT_FORMATS',
    'CALIBRATE_METHODS',
    'OP_TYPE_SETS',
]


QUANT_FORMATS = ('qdq', 'qoperator')


OP_TYPE_SETS = {
    'conv': ['Conv', 'ConvTranspose', 'MatMul'],
    'all': ['Conv', 'ConvTranspose', 'MatMul', 'Add', 'Mul', 'Concat', 'Resize', 'MaxPool', 'Relu', 'Clip'],
}


CALIBRATE_METHODS = ('minmax', 'percentile', 'entropy')


def _calibration_reader(inputs):
    """ONNX Runtime's calibration reader over (N, 3, H, W) inputs."""
    from onnxruntime import quantization

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.inputs = iter([{'image': np.ascontiguousarray(x, dtype=np.float32)} for x in inputs])

        def get_next(self):
            return next(self.inputs, None)

    return Reader()


def _check_static_options(calibration_images, quant_format: str, op_types: str, calibrate_method: str) -> None:
    if not calibration_images:
        raise ValueError("quantize_onnx: mode 'static' needs calibration_images (a few preprocessed inputs).")
    if quant_format not in QUANT_FORMATS:
        raise ValueError(f'quantize_onnx: quant_format {quant_format!r} is not one of {QUANT_FORMATS}.')
    if op_types not in OP_TYPE_SETS:
        raise ValueError(f'quantize_onnx: op_types {op_types!r} is not one of {tuple(OP_TYPE_SETS)}.')
    if calibrate_method not in CALIBRATE_METHODS:
        raise ValueError(f'quantize_onnx: calibrate_method {calibrate_method!r} is not one of {CALIBRATE_METHODS}.')


def quantize_onnx(
    model_path: str,
    output_path: str,
    mode: str = 'dynamic',
    calibration_images=None,
    per_channel: bool = True,
    quant_format: str = 'qoperator',
    calibrate_method: str = 'percentile',
    nodes_to_exclude=None,
    reduce_range: bool = False,
    op_types: str = 'conv',
) -> str:
    """Write an int8-quantised copy of an exported ONNX model with ONNX Runtime's quantiser.

    mode 'dynamic': int8 weights, activations quantised at run time (Conv and MatMul).
    mode 'static': int8 weights and activations of Conv / ConvTranspose / MatMul (the sigmoid and the rest stay
    float), activation ranges calibrated on ``calibration_images``: a sequence of (N, 3, H, W) float32 inputs as
    the model takes them (e.g. ``Detector.preprocess`` of a few images, stacked; never the images you measure on).
    Static options: ``quant_format`` 'qdq' (QuantizeLinear / DequantizeLinear pairs; the head's deconvolutions
    are quantised too: fastest) or 'qoperator' (QLinearConv; ONNX Runtime has no quantised ConvTranspose, so the
    head's deconvolutions stay float: the probability map near the thresholds is closer to fp32);
    ``calibrate_method`` 'minmax', 'percentile' (99.999%: robust to rare outliers) or 'entropy' (these two see
    centre crops of the inputs at their smallest common size when the sizes differ: ``crop_to_common_size``);
    ``nodes_to_exclude``: node names kept float; ``reduce_range``: 7-bit weights; ``op_types`` 'conv' (Conv,
    ConvTranspose, MatMul) or 'all' (also Add, Mul, Concat, Resize, MaxPool, Relu, ...: every op ONNX Runtime's
    quantiser handles, so fewer Quantize / Dequantize pairs between them; sigmoids stay float).
    The default, qoperator + percentile, is the robust one (measured in docs/experiments.md): qdq + minmax is up to
    20% faster and breaks when the last deconvolution's calibrated range widens. Returns ``output_path``.
    """
    from onnxruntime import quantization

    if mode == 'dynamic':
        quantization.quantize_dynamic(
            model_path,
            output_path,
            weight_type=quantization.QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=['Conv', 'MatMul'],
        )
        return _copy_metadata(model_path, output_path)
    if mode != 'static':
        raise ValueError(f"quantize_onnx: mode {mode!r} is not 'dynamic' or 'static'.")
    _check_static_options(calibration_images, quant_format, op_types, calibrate_method)

    if calibrate_method in ('percentile', 'entropy'):  # their histograms stack the inputs: one shape needed
        calibration_images = crop_to_common_size(calibration_images)

    formats = {'qdq': quantization.QuantFormat.QDQ, 'qoperator': quantization.QuantFormat.QOperator}
    methods = {
        name: getattr(quantization.CalibrationMethod, value)
        for name, value in (('minmax', 'MinMax'), ('percentile', 'Percentile'), ('entropy', 'Entropy'))
    }
    with tempfile.TemporaryDirectory() as directory:
        unshared = _unshare_initializers(model_path, os.path.join(directory, 'unshared.onnx'))
        quantization.quantize_static(
            unshared,
            output_path,
            _calibration_reader(calibration_images),
            quant_format=formats[quant_format],
            per_channel=per_channel,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=OP_TYPE_SETS[op_types],
            calibrate_method=methods[calibrate_method],
            nodes_to_exclude=list(nodes_to_exclude or []),
            reduce_range=reduce_range,
        )
    return _copy_metadata(model_path, output_path)


def calibration_inputs(folder: str, count: int, image_short_side: int, representer) -> list:
    """Up to ``count`` images of ``folder``, each preprocessed as the Detector does: (1, 3, H, W) float32."""
    from concern.errors import UserError
    from data.image_io import ImageReadError, find_images, read_image
    from inference.detector import Detector

    preprocessor = Detector(None, representer, image_short_side)
    inputs = []
    for path in find_images(folder):
        try:
            inputs.append(preprocessor.preprocess(read_image(path))[None])
        except ImageReadError as error:
            logging.getLogger('dbnet').warning('calibration: skipped %s', error)
        if len(inputs) == count:
            break
    if not inputs:
        raise UserError(f"--calibration_images '{folder}': no readable image; give a folder of typical images.")
    return inputs


def crop_to_common_size(inputs):
    """(N, 3, H, W) inputs of several sizes -> centre crops of each to the smallest height and width among them
    (multiples of 32 when every input's are). ONNX Runtime's percentile and entropy calibrators stack every
    input's activations into one array and fail on mixed sizes (landscape and portrait photos); a crop keeps the
    photos' own pixels, where padding would add flat areas to the activation statistics. Inputs of one size are
    returned as they are."""
    inputs = list(inputs)
    if len({tuple(x.shape[-2:]) for x in inputs}) <= 1:
        return inputs
    height, width = min(x.shape[-2] for x in inputs), min(x.shape[-1] for x in inputs)
    cropped = []
    for x in inputs:
        top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
        cropped.append(np.ascontiguousarray(x[..., top : top + height, left : left + width]))
    return cropped


def _unshare_initializers(model_path: str, output_path: str) -> str:
    """Write a copy of the ONNX model in which no initializer feeds more than one node input (each extra use gets
    its own copy), ``Identity`` nodes over an initializer read through. ONNX Runtime's QOperator quantiser fails
    on a conv whose bias is not an initializer, and the exporter writes equal constants once (random models: the
    all-zero folded biases) and the other uses as ``Identity`` of it."""
    import onnx

    proto = onnx.load(model_path)
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    aliases = {
        node.output[0]: node.input[0]
        for node in proto.graph.node
        if node.op_type == 'Identity' and node.input[0] in initializers
    }
    seen = set()
    for node in proto.graph.node:
        if node.op_type == 'Identity' and node.output[0] in aliases:
            continue
        for position, name in enumerate(node.input):
            if name in aliases:
                name = aliases[name]
                node.input[position] = name
            if name not in initializers:
                continue
            if name in seen:
                copy_ = onnx.TensorProto()
                copy_.CopyFrom(initializers[name])
                copy_.name = f'{name}_{node.name or len(proto.graph.initializer)}_{position}'
                proto.graph.initializer.append(copy_)
                node.input[position] = copy_.name
            seen.add(name)
    onnx.save(proto, output_path)
    return output_path


def _copy_metadata(source_path: str, output_path: str) -> str:
    """Give the quantised model the source model's metadata_props (the representer arguments that
    ``OnnxDetector`` and ``demo.py --onnx`` read, the experiment, the checkpoint), which the quantiser drops."""
    import onnx

    source, output = onnx.load(source_path, load_external_data=False), onnx.load(output_path)
    values = {entry.key: entry.value for entry in output.metadata_props}
    values.update({entry.key: entry.value for entry in source.metadata_props})
    del output.metadata_props[:]
    for key, value in values.items():
        output.metadata_props.add(key=key, value=value)
    onnx.save(output, output_path)
    return output_path
