"""DBNet.ipynb runs top to bottom (nbclient, a real kernel) with a tiny configuration in its parameter cell."""

import json
import os
import sys

import pytest

from tests import ROOT

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')
pytest.importorskip('ipykernel')


NOTEBOOK = os.path.join(ROOT, 'DBNet.ipynb')
KERNEL = 'dbnet-test-python'

# The quick-start experiment shrunk as in tests/scripts/test_train_eval_demo.py: 96x96 images, 4 training and 3
# validation samples, a narrow decoder, 2 iterations of a batch of 4 with a validation after each (so the notebook has a
# P/R/F curve to print).
TINY_OVERRIDES = [
    'train_data.num_samples=4',
    'train_data.image_size=[96,96]',
    'train_data.processes.1.size=[96,96]',
    'validate_data.num_samples=3',
    'validate_data.image_size=[96,96]',
    "validate_data.processes.0.augmenter_args=[['Resize', {'width': 96, 'height': 96}]]",
    'Experiment.train.data_loader.num_workers=0',
    'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
    'Experiment.logger.log_interval=1',
    'Experiment.validation.interval=1',
]


def tiny_parameters(workspace_root, results_root):
    return '\n'.join(
        [
            "EXPERIMENT = 'experiments/synthetic/quickstart.yaml'",
            "NAME = 'tiny'",
            f'WORKSPACE_ROOT = {str(workspace_root)!r}',
            f'OVERRIDES = {TINY_OVERRIDES!r}',
            "TRAIN_ARGS = ['--epochs', '2', '--batch_size', '4']",
            "DEVICE = 'cpu'",
            'IMAGE_SHORT_SIDE = 64',
            'BOX_THRESH = 0.0',
            f'RESULTS_ROOT = {str(results_root)!r}',
            'INSTALL_REQUIREMENTS = False',
        ]
    )


def write_kernelspec(folder):
    """A kernelspec running ipykernel with this interpreter, so the notebook sees the same packages as the
    tests whatever kernels the machine has installed (nothing is installed outside ``folder``)."""
    spec_dir = folder / 'kernels' / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'DBNet tests',
        'language': 'python',
    }
    (spec_dir / 'kernel.json').write_text(json.dumps(spec))


def outputs_text(cell):
    parts = []
    for output in cell.get('outputs', []):
        if output['output_type'] == 'stream':
            parts.append(output['text'])
        elif 'data' in output and 'text/plain' in output['data']:
            parts.append(output['data']['text/plain'])
    return ''.join(parts)


def images_of(cell):
    return [
        output['data']['image/png']
        for output in cell.get('outputs', [])
        if output['output_type'] == 'display_data' and 'image/png' in output.get('data', {})
    ]


def test_committed_notebook_is_valid_and_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == 'code']
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells)
    parameters = [cell for cell in code_cells if 'parameters' in cell.metadata.get('tags', [])]
    assert len(parameters) == 1
    # The defaults run the real quick start: no shrinking overrides, no iteration cap.
    namespace = {}
    exec(parameters[0].source, namespace)  # noqa: S102 - the notebook's own assignments
    assert namespace['EXPERIMENT'] == 'experiments/synthetic/quickstart.yaml'
    assert namespace['OVERRIDES'] == [] and namespace['TRAIN_ARGS'] == []
    assert namespace['INSTALL_REQUIREMENTS'] is False


@pytest.fixture(scope='module')
def executed(tmp_path_factory):
    """The notebook executed with the tiny parameters (workspace and results in a temporary folder)."""
    base = tmp_path_factory.mktemp('notebook')
    jupyter = base / 'jupyter'
    write_kernelspec(jupyter)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(cell for cell in notebook.cells if 'parameters' in cell.metadata.get('tags', []))
    parameters.source = tiny_parameters(base / 'workspace', base / 'results')
    saved = {key: os.environ.get(key) for key in ('JUPYTER_PATH', 'PYTHONPATH')}
    os.environ.update(JUPYTER_PATH=str(jupyter), PYTHONPATH=ROOT)
    try:
        client = nbclient.NotebookClient(
            notebook, kernel_name=KERNEL, timeout=120, resources={'metadata': {'path': ROOT}}
        )
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook, base


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(executed):
    notebook, base = executed
    code_cells = [cell for cell in notebook.cells if cell.cell_type == 'code']
    assert all(cell.execution_count is not None for cell in code_cells)
    assert not any(output['output_type'] == 'error' for cell in code_cells for output in cell.outputs)
    # It wrote where the parameters say, not into the repository.
    assert (base / 'workspace' / 'tiny' / 'model' / 'final').is_file()  # the run finished
    assert 'The run stopped before its end' not in ''.join(outputs_text(cell) for cell in code_cells)
    assert (base / 'workspace' / 'tiny' / 'model' / 'release_format').is_file()
    assert (base / 'results' / 'tiny' / 'eval' / 'metrics.json').is_file()


@pytest.mark.slow
def test_notebook_prints_the_validation_curve_and_precision_recall_f(executed):
    notebook, base = executed
    text = [outputs_text(cell) for cell in notebook.cells if cell.cell_type == 'code']
    curve = next(chunk for chunk in text if 'iteration  precision  recall  fmeasure' in chunk)
    assert len(curve.strip().splitlines()) >= 3  # the header and the validations at iterations 1 and 2
    evaluation = next(chunk for chunk in text if '$ python eval.py' in chunk)
    metrics = json.loads((base / 'results' / 'tiny' / 'eval' / 'metrics.json').read_text())
    synthetic = metrics['datasets']['synthetic']
    assert (
        f'synthetic: P {synthetic["precision"]:.4f}  R {synthetic["recall"]:.4f}  F {synthetic["fmeasure"]:.4f}'
    ) in evaluation


@pytest.mark.slow
def test_notebook_loads_the_release_format_and_resumes_from_it(executed):
    notebook, _ = executed
    text = ''.join(outputs_text(cell) for cell in notebook.cells if cell.cell_type == 'code')
    assert "first keys: ['model.module.backbone." in text
    assert '0 missing, 0 unexpected keys' in text and 'identical weights: True' in text
    assert 'initialised the model from' in text and 'weights only' in text


@pytest.mark.slow
def test_notebook_shows_overlays_for_every_image_of_the_folder(executed):
    notebook, base = executed
    cells = [cell for cell in notebook.cells if cell.cell_type == 'code']
    images = [image for cell in cells for image in images_of(cell)]
    # 3 shipped samples + skimage text() and page() from demo.py, then page() again from the Detector API.
    assert len(images) == 6
    import base64

    import cv2
    import numpy as np

    text = ''.join(outputs_text(cell) for cell in cells)
    import importlib.util

    expected = 'path: onnxruntime fp32' if importlib.util.find_spec('onnxruntime') else 'path: optimised PyTorch'
    assert expected in text  # the Detector API runs demo.py's default path
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(images[-1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (191, 384)  # skimage.data.page() at its own size
    demo = sorted(path.name for path in (base / 'results' / 'tiny' / 'demo').iterdir())
    assert demo == [
        'res_scikit-image_page.txt',
        'res_scikit-image_text.txt',
        'res_synthetic_1.txt',
        'res_synthetic_2.txt',
        'res_synthetic_3.txt',
        'results.jsonl',
        'run.json',
        'scikit-image_page.jpg',
        'scikit-image_text.jpg',
        'synthetic_1.jpg',
        'synthetic_2.jpg',
        'synthetic_3.jpg',
    ]
