"""The YAML experiment builder: the original's schema, overrides, and one-sentence errors."""

import sys
import textwrap

import pytest

from concern.config import ConfigError, load_config
from concern.registry import UnknownNameError

MODULE = """
class Dataset:
    def __init__(self, data_dir=None, size=8, processes=None):
        self.data_dir, self.size, self.processes = data_dir, size, processes or []

class Resize:
    def __init__(self, height=32):
        self.height = height

class Loader:
    def __init__(self, dataset, batch_size=4):
        self.dataset, self.batch_size = dataset, batch_size

class Needs:
    def __init__(self, required):
        self.required = required

class Flexible:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
"""


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    package = tmp_path / 'cfgpkg_fake'
    package.mkdir()
    (package / '__init__.py').write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop('cfgpkg_fake', None)

    def write(name, text):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


def test_import_refs_dollar_and_base(tree):
    tree(
        'base.yaml',
        """
        import: []
        package: ['cfgpkg_fake']
        define:
          - name: data
            class: Dataset
            data_dir: ./a
            processes:
              - class: Resize
                height: 64
              - $Resize
    """,
    )
    path = tree(
        'exp.yaml',
        """
        import: ['base.yaml']
        package: []
        define:
          - name: bigger
            base: data
            size: 100
          - name: Experiment
            class: Loader
            dataset: ^data
            batch_size: 2
    """,
    )
    config = load_config(path)
    loader = config.build('Experiment')
    assert loader.batch_size == 2
    assert loader.dataset.data_dir == './a'
    assert [p.height for p in loader.dataset.processes] == [64, 32]
    bigger = config.build('bigger')
    assert type(bigger).__name__ == 'Dataset' and bigger.size == 100 and bigger.data_dir == './a'
    # each reference builds a new object
    assert config.build('Experiment').dataset is not loader.dataset


def test_overrides_reach_nested_values_and_references(tree):
    tree('base.yaml', "package: ['cfgpkg_fake']\ndefine:\n  - {name: data, class: Dataset, size: 1}\n")
    path = tree(
        'exp.yaml',
        """
        import: ['base.yaml']
        define:
          - name: Experiment
            class: Loader
            dataset: ^data
    """,
    )
    config = load_config(path, ['Experiment.batch_size=16', 'data.size=7', 'data.processes=[{class: Resize}]'])
    loader = config.build('Experiment')
    assert loader.batch_size == 16 and loader.dataset.size == 7
    assert loader.dataset.processes[0].height == 32
    assert config.build('Experiment.dataset').size == 7
    with pytest.raises(ConfigError, match='closest: Experiment'):
        config.set('Experriment.batch_size', 1)


def test_unknown_class_names_closest(tree):
    path = tree('exp.yaml', "package: ['cfgpkg_fake']\ndefine:\n  - {name: x, class: Datset}\n")
    with pytest.raises(UnknownNameError) as error:
        load_config(path)
    message = str(error.value)
    assert 'exp.yaml' in message and "'Datset'" in message and 'Dataset' in message


def test_wrong_argument_names_key_and_accepted(tree):
    path = tree(
        'exp.yaml', "package: ['cfgpkg_fake']\ndefine:\n  - {name: x, class: Loader, dataset: 1, batchsize: 3}\n"
    )
    config = load_config(path)
    with pytest.raises(ConfigError) as error:
        config.build('x')
    message = str(error.value)
    assert 'exp.yaml' in message and "'x.batchsize'" in message and 'batch_size' in message
    # classes taking **kwargs accept anything; missing required arguments are named
    path = tree(
        'ok.yaml',
        "package: ['cfgpkg_fake']\ndefine:\n  - {name: f, class: Flexible, anything: 1}\n  - {name: n, class: Needs}\n",
    )
    config = load_config(path)
    assert config.build('f').kwargs == {'anything': 1}
    with pytest.raises(ConfigError, match="needs the argument 'required'"):
        config.build('n')


def test_missing_import_and_bad_reference(tree):
    path = tree('exp.yaml', "import: ['nope.yaml']\ndefine: []\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: imported file 'nope\.yaml' does not exist"):
        load_config(path)
    path = tree(
        'ref.yaml',
        "package: ['cfgpkg_fake']\ndefine:\n  - {name: data, class: Dataset}\n"
        '  - {name: x, class: Loader, dataset: ^dta}\n',
    )
    with pytest.raises(ConfigError) as error:
        load_config(path).build('x')
    assert "'^dta'" in str(error.value) and 'data' in str(error.value) and 'ref.yaml' in str(error.value)
    with pytest.raises(ConfigError, match='does not exist'):
        load_config('missing_experiment.yaml')


def test_bad_top_level_package_and_circular_import(tree):
    path = tree('top.yaml', 'defines: []\n')
    with pytest.raises(ConfigError, match="unknown top-level key 'defines'"):
        load_config(path)
    path = tree('pkg.yaml', "package: ['no_such_module_xyz']\ndefine: []\n")
    with pytest.raises(ConfigError, match="package 'no_such_module_xyz' cannot be imported"):
        load_config(path)
    tree('a.yaml', "import: ['b.yaml']\n")
    path = tree('b.yaml', "import: ['a.yaml']\n")
    with pytest.raises(ConfigError, match='circular import'):
        load_config(path)


def test_yaml_is_loaded_safely(tree):
    path = tree('evil.yaml', "define:\n  - name: x\n    value: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_config(path)


def test_dump_round_trips(tree):
    path = tree(
        'exp.yaml',
        "package: ['cfgpkg_fake']\ndefine:\n  - {name: data, class: Dataset, size: 3}\n"
        '  - {name: x, class: Loader, dataset: ^data}\n',
    )
    config = load_config(path)
    again = tree('dumped.yaml', config.dump())
    rebuilt = load_config(again).build('x')
    assert rebuilt.dataset.size == 3 and rebuilt.batch_size == 4


def test_dump_keeps_null_values(tree):
    path = tree(
        'exp.yaml', "package: ['cfgpkg_fake']\ndefine:\n  - {name: x, class: Dataset, data_dir: null, size: 2}\n"
    )
    rebuilt = load_config(tree('dumped.yaml', load_config(path).dump())).build('x')
    assert rebuilt.data_dir is None and rebuilt.size == 2


class Broken:
    """A class whose own code fails: its error is not the YAML's fault."""

    def __init__(self, size=1):
        self.size = size
        raise FileNotFoundError(f'Broken.__init__ could not open data_{size}.txt')


def test_an_error_inside_a_constructor_keeps_its_type_traceback_and_names_the_yaml_object(tree, monkeypatch):
    module = type(sys)('cfgpkg_broken')
    module.Broken = Broken
    monkeypatch.setitem(sys.modules, 'cfgpkg_broken', module)
    path = tree('exp.yaml', "package: ['cfgpkg_broken']\ndefine:\n  - {name: x, class: Broken, size: 3}\n")
    config = load_config(path)
    with pytest.raises(FileNotFoundError) as error:
        config.build('x')
    assert not isinstance(error.value, ConfigError)
    assert str(error.value) == 'Broken.__init__ could not open data_3.txt'
    assert error.traceback[-1].name == '__init__'  # the traceback reaches the line that raised
    if sys.version_info >= (3, 11):
        assert any("'x' (Broken)" in note and 'exp.yaml' in note for note in error.value.__notes__)
