"""Builder: the YAML's ``builder`` (model class name + model_args) -> a model."""

import structure.model


class Builder:
    """Builds ``structure.model.<model>(model_args)``.

    model: class name in structure/model.py (the original's 'SegDetectorModel'); model_args:
    its args dict (see SegDetectorModel). build(device=None) -> the model (on ``device``).
    """

    def __init__(self, model='SegDetectorModel', model_args=None):
        if not hasattr(structure.model, model):
            raise ValueError(f'Builder: unknown model {model!r}; use SegDetectorModel.')
        self.model = model
        self.model_args = dict(model_args or {})

    @property
    def model_name(self):
        return self.model + '-' + getattr(structure.model, self.model).model_name(self.model_args)

    def build(self, device=None):
        return getattr(structure.model, self.model)(self.model_args, device=device)
