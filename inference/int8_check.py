"""``--precision auto`` for an ONNX model: whether its int8 copy may run.

``convert_to_onnx.py --int8`` runs the float and the int8 model on its calibration images, stores the comparison
(``measure_precision_change``) in both files' metadata and the int8 file's name in the float file's
(``record_int8_check``); ``auto_onnx_model`` runs the int8 copy only on a CPU with int8 dot products (AVX512-VNNI,
AVX-VNNI or AMX-INT8) and only if its detections agreed with the float model's within ``MAX_DISAGREEMENT``; else
the float model, and it says why in one line. Imports no torch (demo.py --onnx runs without it)."""

from __future__ import annotations

import json
import os

import numpy as np

from concern.cpu import INT8_CPU_FLAGS, cpu_flags

__all__ = [
    'auto_onnx_model',
    'measure_precision_change',
    'record_int8_check',
    'INT8_MODEL_KEY',
    'INT8_CHECK_KEY',
    'MAX_DISAGREEMENT',
]


# metadata of the float model: the int8 copy's path (relative to the float file's folder); of both: the check
INT8_MODEL_KEY = 'dbnet.int8_model'


INT8_CHECK_KEY = 'dbnet.int8_check'


# auto uses int8 only if F of its detections against the float model's, on the calibration images, is at least
# 1 - MAX_DISAGREEMENT: half a point, the accuracy change the project accepts for reduced precision
MAX_DISAGREEMENT = 0.005


def _detections(representer, probability: np.ndarray) -> list:
    """Boxes of each (1, H, W) map of a (N, 1, H, W) batch, as the representer finds them."""
    return [representer.represent_map(p[0], p.shape[1:], False)[0] for p in probability]


def measure_precision_change(reference_forward, candidate_forward, inputs, representer) -> dict:
    """Compare a reduced-precision forward with the float one on ``inputs`` (preprocessed (N, 3, H, W) float32
    batches). Returns {'images', 'boxes' (found by the float model), 'max_probability_difference',
    'binary_flip_fraction' (share of pixels on the other side of the representer's thresh), 'detection_agreement'
    (F-measure of the candidate's boxes against the float model's, IoU 0.5; 1.0 when neither finds any)}."""
    from concern.protocols.iou import DetectionIoUEvaluator

    evaluator = DetectionIoUEvaluator()
    results, images, boxes, difference, flipped, pixels = [], 0, 0, 0.0, 0, 0
    for batch in inputs:
        reference, candidate = reference_forward(batch), candidate_forward(batch)
        difference = max(difference, float(np.abs(reference - candidate).max()))
        flipped += int(((reference > representer.thresh) != (candidate > representer.thresh)).sum())
        pixels += reference.size
        for expected, got in zip(_detections(representer, reference), _detections(representer, candidate)):
            images += 1
            boxes += len(expected)
            gt = [{'points': np.asarray(box), 'ignore': False} for box in expected]
            results.append(evaluator.evaluate_image(gt, [{'points': np.asarray(box)} for box in got]))
    combined = evaluator.combine_results(results)
    empty = combined['num_gt'] == 0 and combined['num_det'] == 0
    return {
        'images': images,
        'boxes': boxes,
        'max_probability_difference': round(difference, 6),
        'binary_flip_fraction': round(flipped / max(pixels, 1), 8),
        'detection_agreement': 1.0 if empty else round(float(combined['fmeasure']), 6),
    }


def record_int8_check(float_path: str, int8_path: str, check: dict) -> None:
    """Store ``check`` (``measure_precision_change``) in both files' metadata and the int8 file's path, relative
    to the float file's folder, in the float file's."""
    import onnx

    relative = os.path.relpath(os.path.abspath(int8_path), os.path.dirname(os.path.abspath(float_path)))
    for path, extra in ((float_path, {INT8_MODEL_KEY: relative}), (int8_path, {})):
        proto = onnx.load(path)
        values = {entry.key: entry.value for entry in proto.metadata_props}
        values.update({INT8_CHECK_KEY: json.dumps(check), **extra})
        del proto.metadata_props[:]
        for key, value in values.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, path)


def _metadata(path: str) -> dict:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return dict(session.get_modelmeta().custom_metadata_map)


def auto_onnx_model(path: str, flags=None) -> tuple[str, str]:
    """``(model path to run, reason)`` for ``--precision auto`` with the float ONNX model ``path``: its int8 copy
    (``INT8_MODEL_KEY``) when the CPU has int8 dot products and the stored check is within ``MAX_DISAGREEMENT``,
    else ``path``. ``flags``: the CPU flags (default: read from /proc/cpuinfo)."""
    metadata = _metadata(path)
    if INT8_MODEL_KEY not in metadata:
        return path, (
            f'precision auto: fp32 ({path} names no int8 copy; convert_to_onnx.py --int8 PATH '
            f'--calibration_images FOLDER writes and checks one)'
        )
    int8_path = os.path.join(os.path.dirname(os.path.abspath(path)), metadata[INT8_MODEL_KEY])
    if not os.path.exists(int8_path):
        return path, f'precision auto: fp32 (its int8 copy {int8_path} is not there)'
    flags = cpu_flags() if flags is None else flags
    found = [flag for flag in INT8_CPU_FLAGS if flag in flags]
    if not found:
        return path, 'precision auto: fp32 (the CPU has no AVX512-VNNI / AVX-VNNI / AMX-INT8, where int8 is slower)'
    check = json.loads(metadata.get(INT8_CHECK_KEY, 'null'))
    if not check or not check.get('boxes'):
        return path, f'precision auto: fp32 (no int8 accuracy check with detections is stored in {path})'
    agreement = check['detection_agreement']
    summary = (
        f'detections agree with fp32 at F {agreement:.4f} on {check["images"]} calibration images '
        f'({check["boxes"]} boxes, max |dp| {check["max_probability_difference"]:.3f})'
    )
    if agreement < 1 - MAX_DISAGREEMENT:
        return path, f'precision auto: fp32 (the int8 copy {summary}, below {1 - MAX_DISAGREEMENT})'
    return int8_path, f'precision auto: int8 {int8_path} (the CPU has {found[0]}; its {summary})'
