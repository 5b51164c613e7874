"""Installs the DBNet packages so that `import backbones, decoders, structure, data, concern` works anywhere."""
from setuptools import find_packages, setup


def read_requirements(path):
    with open(path, encoding='utf-8') as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith('#')]


setup(
    name='dbnet',
    version='0.1.0',
    description='DBNet and DBNet++ text detection (Differentiable Binarization), faithful to MhLiao/DB',
    packages=find_packages(include=['backbones*', 'decoders*', 'structure*', 'data*', 'concern*',
                                    'assets*', 'training*', 'deploy*']),
    py_modules=['experiment', 'trainer', 'train', 'eval', 'demo', 'convert_to_onnx'],
    python_requires='>=3.9',
    install_requires=read_requirements('requirements.txt'),
    extras_require={'onnx': ['onnx>=1.14', 'onnxruntime>=1.16'], 'tensorboard': ['tensorboard'],
                    'dev': read_requirements('requirements-dev.txt')},
    include_package_data=True,
)
