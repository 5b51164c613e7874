"""pyproject.toml's console entry points name importable main() functions that answer --help."""

import importlib
import os

import pytest

from tests import ROOT

tomllib = pytest.importorskip('tomllib')  # Python 3.11+


def test_each_console_script_imports_and_answers_help(capsys):
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as handle:
        project = tomllib.load(handle)['project']
    scripts = project['scripts']
    assert sorted(scripts) == ['dbnet-demo', 'dbnet-eval', 'dbnet-export', 'dbnet-train']
    for name, target in scripts.items():
        module_name, function = target.split(':')
        main = getattr(importlib.import_module(module_name), function)
        with pytest.raises(SystemExit) as exit_info:
            main(['--help'])
        assert exit_info.value.code == 0, name
        assert 'usage:' in capsys.readouterr().out


def test_dependencies_come_from_requirements_txt():
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as handle:
        config = tomllib.load(handle)
    assert config['project']['dynamic'] == ['dependencies']
    assert config['tool']['setuptools']['dynamic']['dependencies']['file'] == ['requirements.txt']
    assert set(config['project']['optional-dependencies']['onnx']) == {'onnx>=1.14', 'onnxruntime>=1.16'}
