"""Installs the DBNet packages so that `import backbones, decoders, structure, data, concern` works anywhere."""
from setuptools import find_packages, setup


def read_requirements(path):
    with open(path, encoding='utf-8') as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith('#')]
    included = [item for line in lines if line.startswith('-r ') for item in read_requirements(line[3:].strip())]
    return included + [line for line in lines if not line.startswith('-r ')]


setup(
    name='dbnet',
    version='0.1.0',
    description='DBNet and DBNet++ text detection (Differentiable Binarization), faithful to MhLiao/DB',
    packages=find_packages(include=['backbones*', 'decoders*', 'structure*', 'data*', 'concern*',
                                    'assets*', 'training*', 'deploy*']),
    py_modules=['experiment', 'trainer', 'train', 'eval', 'demo', 'convert_to_onnx'],
    python_requires='>=3.9',
    install_requires=read_requirements('requirements.txt'),
    extras_require={'onnx': read_requirements('requirements-onnx.txt'), 'tensorboard': ['tensorboard'],
                    'dev': read_requirements('requirements-dev.txt')},
    include_package_data=True,
)
