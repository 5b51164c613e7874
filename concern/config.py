"""Experiment configuration in the original DB YAML schema, loaded safely and built explicitly.

A file has three top-level keys:

``import``
    YAML files compiled first; their definitions and packages are inherited.
``package``
    Python modules in which ``class:`` names are looked up (a dotted ``module.Class`` also works).
``define``
    A list of named objects: ``{name: N, class: C, <argument>: <value>, ...}``.

Inside values, ``^name`` refers to another definition (built anew wherever it is used), ``$Class``
stands for ``{class: Class}`` with no arguments, and a dictionary with ``base: name`` starts from that
definition and overrides its keys. Files are read with ``yaml.safe_load``; nothing runs beyond importing
the modules listed under ``package``.

Building calls each class with its YAML keys as keyword arguments, after checking them against the
class's signature: a key the class does not take is an error that names the file, the key and the
accepted names. ``load_config(path, overrides)`` compiles a file; ``Config.build(path)`` builds one
definition or any value below it (``Experiment.structure``, ``validate_data``...).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from concern.errors import UserError
from concern.registry import closest_names, lookup

__all__ = ['ConfigError', 'ClassSpec', 'Ref', 'Config', 'load_config', 'parse_override']

TOP_LEVEL_KEYS = ('import', 'package', 'define')
_ALL = object()


class ConfigError(UserError, ValueError):
    """A configuration problem, described in one sentence naming the file and the key."""


@dataclass
class Ref:
    """A ``^name`` reference to another definition, resolved when it is built."""

    name: str
    source: str
    where: str


@dataclass
class ClassSpec:
    """A value to build: ``cls(**args)``; ``source`` is the YAML file it came from."""

    cls: type
    args: dict
    source: str
    where: str = ''

    @property
    def class_name(self) -> str:
        return self.cls.__name__


def _read_yaml(path: str, imported_by: str | None = None) -> dict:
    if not os.path.isfile(path):
        if imported_by:
            raise ConfigError(f"{imported_by}: imported file '{path}' does not exist; fix the path under 'import:'.")
        raise ConfigError(f"Experiment file '{path}' does not exist; check the path.")
    with open(path, encoding='utf-8') as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f'{path}: not valid YAML ({error}).') from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: the top level must be a mapping with keys {TOP_LEVEL_KEYS}.')
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key '{unknown[0]}'; the accepted keys are {', '.join(TOP_LEVEL_KEYS)}."
        )
    return data


def _resolve_import(path: str, importing_file: str) -> str:
    """Imports are relative to the working directory (as in the original), else to the importing
    file's folder, else to the repository root."""
    if os.path.isabs(path) or os.path.isfile(path):
        return path
    candidates = [os.path.join(os.path.dirname(importing_file), path), os.path.join(_repo_root(), path)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return path


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _closest(name: str, choices: Iterable[str], count: int = 3) -> str:
    return ', '.join(closest_names(name, choices, count)) or 'none'


def _public_classes(module) -> dict[str, type]:
    """The module's public classes, including those its ``__all__`` names for a lazy ``__getattr__``."""
    names = [name for name in [*vars(module), *getattr(module, '__all__', ())] if not name.startswith('_')]
    return {name: value for name in names if inspect.isclass(value := getattr(module, name, None))}


class _Compiler:
    """Turns YAML files into definitions: ClassSpec / Ref / plain values."""

    def __init__(self):
        self.modules: dict[str, Any] = {}
        self.defines: dict[str, Any] = {}
        self.stack: list[str] = []
        # YAML anchors and aliases (``validation: &validate`` ... ``evaluation: *validate``) load as one Python
        # object; it is compiled once, so that an override of one name reaches the other, as in the file.
        self._compiled: dict[int, tuple[Any, Any]] = {}

    def import_packages(self, packages, source):
        if not isinstance(packages, list):
            raise ConfigError(f"{source}: 'package' must be a list of module names.")
        for package in packages:
            if package in self.modules:
                continue
            try:
                self.modules[package] = importlib.import_module(package)
            except ModuleNotFoundError as error:
                raise ConfigError(
                    f"{source}: package '{package}' cannot be imported ({error}); fix the name under 'package:'."
                ) from error

    def compile_file(self, path: str, imported_by: str | None = None):
        real = os.path.realpath(path)
        if real in self.stack:
            raise ConfigError(f'{path}: circular import ({" -> ".join(self.stack + [real])}).')
        self.stack.append(real)
        data = _read_yaml(path, imported_by)
        imports = data.get('import') or []
        if not isinstance(imports, list):
            raise ConfigError(f"{path}: 'import' must be a list of YAML files.")
        for child in imports:
            self.compile_file(_resolve_import(child, path), imported_by=path)
        self.import_packages(data.get('package') or [], path)
        defines = data.get('define') or []
        if isinstance(defines, dict):
            defines = [defines]
        if not isinstance(defines, list):
            raise ConfigError(f"{path}: 'define' must be a list of mappings with a 'name'.")
        for index, entry in enumerate(defines):
            if not isinstance(entry, dict) or not isinstance(entry.get('name'), str):
                raise ConfigError(f"{path}: define entry {index} needs a string 'name'.")
            entry = dict(entry)
            name = entry.pop('name')
            self.defines[name] = self.compile_value(entry, path, name)
        self.stack.pop()

    def find_class(self, name: str, source: str, where: str) -> type:
        if not isinstance(name, str):
            raise ConfigError(f"{source}: '{where}.class' must be a class name, not {name!r}.")
        if '.' in name:
            module_name, class_name = name.rsplit('.', 1)
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                raise ConfigError(
                    f"{source}: '{where}': module '{module_name}' of class '{name}' cannot be imported ({error})."
                ) from error
            return lookup(
                _public_classes(module), class_name, f"class of module '{module_name}'", f"{source}: '{where}'"
            )
        known = {}
        for module in reversed(list(self.modules.values())):  # the first package listed wins
            known.update(_public_classes(module))
        return lookup(
            known, name, f'class (searched packages {", ".join(self.modules) or "none"})', f"{source}: '{where}'"
        )

    def compile_value(self, value, source: str, where: str):
        if isinstance(value, str):
            if value.startswith('^'):
                return Ref(value[1:], source, where)
            if value.startswith('$'):
                return ClassSpec(self.find_class(value[1:], source, where), {}, source, where)
            return value
        if isinstance(value, (list, dict)):
            known = self._compiled.get(id(value))
            if known is not None and known[0] is value:
                return known[1]
            compiled = self._compile_container(value, source, where)
            self._compiled[id(value)] = (value, compiled)  # the raw value is kept alive: its id stays unique
            return compiled
        return value

    def _compile_container(self, value, source: str, where: str):
        if isinstance(value, list):
            return [self.compile_value(item, source, f'{where}.{index}') for index, item in enumerate(value)]
        if isinstance(value, dict):
            value = dict(value)
            base = value.pop('base', None)
            merged_args: dict = {}
            base_class = None
            if base is not None:
                if not isinstance(base, str) or base not in self.defines:
                    raise ConfigError(
                        f"{source}: '{where}.base' names '{base}', which is not defined; "
                        f'closest: {_closest(str(base), self.defines)}.'
                    )
                parent = copy.deepcopy(self.defines[base])
                if isinstance(parent, ClassSpec):
                    merged_args, base_class = parent.args, parent.cls
                elif isinstance(parent, dict):
                    merged_args = parent
                else:
                    raise ConfigError(f"{source}: '{where}.base' must name a mapping definition.")
            class_name = value.pop('class', None)
            for key, item in value.items():
                merged_args[key] = self.compile_value(item, source, f'{where}.{key}')
            if class_name is not None:
                return ClassSpec(self.find_class(class_name, source, where), merged_args, source, where)
            if base_class is not None:
                return ClassSpec(base_class, merged_args, source, where)
            return merged_args


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'Experiment.train.epochs=3'`` -> (['Experiment', 'train', 'epochs'], 3); the value is YAML."""
    if '=' not in text:
        raise ConfigError(f"Override '{text}' must look like path.to.key=value.")
    path, raw = text.split('=', 1)
    keys = [key for key in path.strip().split('.') if key]
    if not keys:
        raise ConfigError(f"Override '{text}' names no key.")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"Override '{text}': the value is not valid YAML ({error}).") from error
    return keys, value


class Config:
    """Compiled definitions of an experiment file, ready to build.

    ``defines`` maps each ``name`` of the file (and of the files it imports) to its compiled value.
    """

    def __init__(self, path: str, defines: dict[str, Any], compiler: _Compiler):
        self.path = path
        self.defines = defines
        self._compiler = compiler

    # ----------------------------------------------------------------- navigation / overrides
    def _lookup(self, keys: list[str], text: str):
        """Returns (container, key) holding the value at ``keys``."""
        if keys[0] not in self.defines:
            raise ConfigError(
                f"{self.path}: '{text}' starts with '{keys[0]}', which is not defined; "
                f'closest: {_closest(keys[0], self.defines)}.'
            )
        container, key = self.defines, keys[0]
        for index, step in enumerate(keys[1:], start=1):
            node = container[key]
            while isinstance(node, Ref):
                node = self.defines[node.name]
            args = node.args if isinstance(node, ClassSpec) else node
            if isinstance(args, list):
                if not step.lstrip('-').isdigit() or not -len(args) <= int(step) < len(args):
                    raise ConfigError(
                        f"{self.path}: '{text}': '{'.'.join(keys[:index])}' is a list "
                        f"of {len(args)} items; '{step}' is not an index in it."
                    )
                container, key = args, int(step)
            elif isinstance(args, dict):
                if step not in args and index < len(keys) - 1:
                    raise ConfigError(
                        f"{self.path}: '{text}': '{'.'.join(keys[:index])}' has no key "
                        f"'{step}'; closest: {_closest(step, args)}."
                    )
                container, key = args, step
            else:
                raise ConfigError(
                    f"{self.path}: '{text}': '{'.'.join(keys[:index])}' is a plain value and has no key '{step}'."
                )
        return container, key

    def get(self, dotted: str, default=None):
        """The compiled value at ``dotted`` (ClassSpec / plain), or ``default`` when absent."""
        try:
            container, key = self._lookup(dotted.split('.'), dotted)
            value = container[key]
        except (ConfigError, KeyError):
            return default
        while isinstance(value, Ref):
            value = self.defines[value.name]
        return value

    def has(self, dotted: str) -> bool:
        marker = object()
        return self.get(dotted, marker) is not marker

    def set(self, dotted: str | list[str], value) -> None:
        """Sets the value at ``dotted`` (a new key is allowed in a class's arguments: the build
        checks it against the signature). ``value`` is a plain YAML value, compiled here."""
        keys = dotted.split('.') if isinstance(dotted, str) else list(dotted)
        text = '.'.join(keys)
        if len(keys) > 1 and keys[-1] == 'class':
            self._set_class(keys[:-1], value, text)
            return
        container, key = self._lookup(keys, text)
        container[key] = self._compiler.compile_value(value, f'override {text}', text)

    def _set_class(self, keys: list[str], name, text: str) -> None:
        """``path.class=Name``: the object at ``path`` is built as ``Name`` (its arguments kept)."""
        container, key = self._lookup(keys, text)
        node = container[key] if not isinstance(container, dict) or key in container else None
        if isinstance(node, Ref):
            raise ConfigError(
                f"{self.path}: '{text}': '{'.'.join(keys)}' refers to '^{node.name}'; set '{node.name}.class' instead."
            )
        cls = self._compiler.find_class(name, f'override {text}', '.'.join(keys))
        if isinstance(node, ClassSpec):
            node.cls = cls
        elif isinstance(node, dict):
            container[key] = ClassSpec(cls, node, f'override {text}', '.'.join(keys))
        else:
            raise ConfigError(f"{self.path}: '{text}': '{'.'.join(keys)}' is not a mapping, so it has no class.")

    def apply_overrides(self, overrides: Iterable[str]) -> None:
        for text in overrides or []:
            keys, value = parse_override(text)
            self.set(keys, value)

    # ----------------------------------------------------------------- building
    def build(self, dotted: str):
        """Builds the definition or sub-value at ``dotted``."""
        container, key = self._lookup(dotted.split('.'), dotted)
        if isinstance(container, dict) and key not in container:
            raise ConfigError(f"{self.path}: nothing is defined at '{dotted}'.")
        return self.build_value(container[key], dotted)

    def build_value(self, value, where: str, _seen: tuple = ()):
        if isinstance(value, Ref):
            if value.name not in self.defines:
                raise ConfigError(
                    f"{value.source}: '{value.where}' refers to '^{value.name}', which is "
                    f'not defined; closest: {_closest(value.name, self.defines)}.'
                )
            if value.name in _seen:
                raise ConfigError(f"{value.source}: '{value.where}': '^{value.name}' refers to itself.")
            return self.build_value(self.defines[value.name], value.name, _seen + (value.name,))
        if isinstance(value, ClassSpec):
            return self._construct(value, where, _seen)
        if isinstance(value, list):
            return [self.build_value(item, f'{where}.{index}', _seen) for index, item in enumerate(value)]
        if isinstance(value, dict):
            return {key: self.build_value(item, f'{where}.{key}', _seen) for key, item in value.items()}
        return copy.deepcopy(value)

    def _construct(self, spec: ClassSpec, where: str, seen: tuple):
        """``spec.cls(**args)``. What the YAML can get wrong (an unknown or missing argument, a bad
        reference) is checked before the call and raised as ConfigError; an exception raised by the class's
        own code propagates unchanged, with its traceback and a note naming the YAML object being built."""
        check_arguments(spec.cls, spec.args, spec.source, spec.where or where)
        kwargs = {key: self.build_value(item, f'{where}.{key}', seen) for key, item in spec.args.items()}
        try:
            return spec.cls(**kwargs)
        except UserError:  # already one sentence naming the file / folder / key
            raise
        except Exception as error:
            if hasattr(error, 'add_note'):  # Python 3.11+
                error.add_note(f"(while building '{spec.where or where}' ({spec.class_name}) of {spec.source})")
            raise

    # ----------------------------------------------------------------- dumping
    def to_plain(self, value=_ALL):
        """A YAML-serialisable copy of the definitions (classes by dotted name, ``^refs`` kept)."""
        if value is _ALL:
            return {name: self.to_plain(item) for name, item in self.defines.items()}
        if isinstance(value, Ref):
            return '^' + value.name
        if isinstance(value, ClassSpec):
            out = {'class': f'{value.cls.__module__}.{value.cls.__name__}'}
            out.update({key: self.to_plain(item) for key, item in value.args.items()})
            return out
        if isinstance(value, list):
            return [self.to_plain(item) for item in value]
        if isinstance(value, dict):
            return {key: self.to_plain(item) for key, item in value.items()}
        return value

    def dump(self) -> str:
        """The whole compiled experiment as one self-contained YAML file."""
        defines = [
            dict(name=name, **(plain if isinstance(plain, dict) else {'value': plain}))
            for name, plain in self.to_plain().items()
        ]
        return yaml.safe_dump(
            {'import': [], 'package': list(self._compiler.modules), 'define': defines}, sort_keys=False
        )


def check_arguments(cls: type, args: dict, source: str, where: str) -> None:
    """Raises ConfigError when ``args`` has a key that ``cls`` does not accept."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters.values()
    if any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters):
        return
    accepted = [
        parameter.name
        for parameter in parameters
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]
    for key in args:
        if key not in accepted:
            raise ConfigError(
                f"{source}: '{where}.{key}': {cls.__name__} takes no argument '{key}'; "
                f'closest: {_closest(key, accepted)} (accepted: {", ".join(accepted)}).'
            )
    missing = [
        parameter.name
        for parameter in parameters
        if parameter.default is parameter.empty
        and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        and parameter.name not in args
    ]
    if missing:
        raise ConfigError(f"{source}: '{where}': {cls.__name__} needs the argument '{missing[0]}'.")


def load_config(path: str, overrides: Iterable[str] = ()) -> Config:
    """Compiles ``path`` (and its imports) and applies ``path.to.key=value`` overrides."""
    compiler = _Compiler()
    compiler.compile_file(path)
    config = Config(path, compiler.defines, compiler)
    config.apply_overrides(overrides)
    return config
