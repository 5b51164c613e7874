"""The detection thresholds' defaults and where a run's box_thresh comes from. Imports no torch."""

from __future__ import annotations

__all__ = ['resolve_box_thresh', 'ORIGINAL_BOX_THRESH']


# The original eval.py / demo.py --box_thresh default, used when neither the command line nor the experiment's
# representer sets one (the original's experiment files set none).
ORIGINAL_BOX_THRESH = 0.6


def resolve_box_thresh(given: float | None, config) -> tuple[float, str]:
    """``(box_thresh, where it came from)``: ``--box_thresh`` when given, else the box_thresh that the experiment
    (a compiled ``concern.config.Config``) gives its representer, else the original's command-line default 0.6."""
    spec = config.get('Experiment.structure.representer')
    representer_args = getattr(spec, 'args', spec if isinstance(spec, dict) else {})
    experiment = config.path
    if given is not None:
        return float(given), '--box_thresh'
    if 'box_thresh' in representer_args:
        return float(representer_args['box_thresh']), f"the representer's box_thresh in {experiment}"
    return ORIGINAL_BOX_THRESH, (f'the original eval.py / demo.py default; {experiment} sets no representer box_thresh')
