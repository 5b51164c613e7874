"""Every script under tools/ and benchmarks/ runs by its path (``python tools/score_results.py``), the way users of
research repositories type it, as well as with ``python -m``."""

import ast
import glob
import os

import pytest

from tests import ROOT
from tests.scripts.common import run_python

PROJECT = {'assets', 'backbones', 'benchmarks', 'concern', 'data', 'decoders', 'inference', 'structure', 'tools'}
SCRIPTS = sorted(
    path
    for folder in ('tools', 'benchmarks')
    for path in glob.glob(os.path.join(ROOT, folder, '*.py'))
    if not path.endswith('__init__.py')
)


@pytest.mark.parametrize('path', SCRIPTS, ids=os.path.basename)
def test_the_repository_root_is_on_the_path_before_the_first_project_import(path):
    with open(path) as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.If) and 'sys.path.insert' in ast.unparse(node):
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert (module or '').split('.')[0] not in PROJECT, f'{path}: imports {module} before the path is set'
    assert 'sys.path.insert' in open(path).read() or "__name__ == '__main__'" not in open(path).read()


def test_score_results_runs_by_its_path(tmp_path):
    result = run_python(os.path.join('tools', 'score_results.py'), '--help')
    assert result.returncode == 0 and '--gt' in result.stdout, result.stderr[-2000:]
