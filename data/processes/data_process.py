"""The base class of every sample-dict process."""


class DataProcess:
    """A step of the data pipeline: takes the sample dict, returns it with keys added or changed.

    Subclasses implement ``process(data) -> data``; calling the object runs ``process``. The keys
    each process reads and writes are listed in CONTRIBUTING.md ("The sample dict").
    """

    def __call__(self, data: dict) -> dict:
        return self.process(data)

    def process(self, data: dict) -> dict:
        raise NotImplementedError(f'{type(self).__name__} must implement process(data).')
