"""Drops keys from the sample dict before batching."""

from .data_process import DataProcess


class FilterKeys(DataProcess):
    """Removes keys from the sample: either the ``superfluous`` ones, or all but the ``required`` ones.

    ``required`` keys missing from the sample are an error. Superfluous keys absent from the sample
    are skipped. Give exactly one of the two lists (the original refused both; with neither it
    deleted every key, which is refused here).
    """

    def __init__(self, required=[], superfluous=[]):
        self.required = list(required)
        self.superfluous = list(superfluous)
        if self.required and self.superfluous:
            raise ValueError("FilterKeys: give either 'required' or 'superfluous', not both.")
        if not self.required and not self.superfluous:
            raise ValueError(
                "FilterKeys: give 'required' (keys to keep) or 'superfluous' (keys to "
                'drop); with neither every key would be dropped.'
            )

    def process(self, data):
        missing = [key for key in self.required if key not in data]
        if missing:
            raise KeyError(
                f'FilterKeys: required keys {missing} are not in the sample (it has '
                f"{sorted(data)}); fix 'required' or the processes before it."
            )
        if self.required:
            drop = [key for key in data if key not in self.required]
        else:
            drop = [key for key in self.superfluous if key in data]
        for key in drop:
            del data[key]
        return data
