"""Resumable results of a detection run: JSON Lines, one whole line per image, nothing lost, nothing twice.

A result folder holds ``run.json`` (the model and the settings of the run, and their id) and one JSON Lines file
per process: ``results.jsonl`` for one process, ``results.rank<R>.jsonl`` for rank R of a torchrun launch. Each
line is one image,

    {"image": "photos/a.jpg", "height": 720, "width": 1280, "run": "<id>",
     "detections": [{"points": [[x, y], ...], "score": 0.93}, ...]}

or ``{"image": ..., "error": "<why>", "run": "<id>"}`` for a file that could not be read. The guarantee: a line is
written with one ``write`` of the whole line to a file opened for appending, so a killed process leaves whole lines
and at most one cut last line; ``ResultLog`` cuts that line off when it opens its file again, and the images of the
whole lines of every result file in the folder count as done. A folder written by another model or other settings
is refused in one sentence (``UserError``), never mixed; nothing in it is changed then.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

from concern.errors import UserError

__all__ = ['ResultLog', 'run_id', 'read_results', 'detections_by_image', 'RUN_FILE']

RUN_FILE = 'run.json'


def run_id(settings: dict) -> str:
    """16 hex digits naming ``settings`` (a JSON-serialisable dict): the same settings, the same id."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def _result_files(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(folder), 'results*.jsonl')))


def _whole_lines(path: str) -> tuple[list[bytes], int]:
    """The whole (newline-terminated) lines of ``path`` and the byte length they take."""
    with open(path, 'rb') as handle:
        data = handle.read()
    end = data.rfind(b'\n') + 1
    return data[:end].splitlines(), end


def read_results(folder: str) -> list[dict]:
    """Every whole line of the folder's result files, parsed, file after file (a cut last line is left out)."""
    records = []
    for path in _result_files(folder):
        records.extend(json.loads(line) for line in _whole_lines(path)[0] if line.strip())
    return records


def detections_by_image(folder: str) -> dict:
    """{image path: its detections (a list of {'points', 'score'})} of the images read in the folder's results
    (unreadable images, recorded with an error, are left out)."""
    return {record['image']: record['detections'] for record in read_results(folder) if 'detections' in record}


class ResultLog:
    """The result files of one process of a run in ``folder``; ``settings``: the model and settings (a dict that
    JSON can write). ``rank`` / ``world_size``: this process among a torchrun launch.

    ``done``: the image paths that have a whole line in any result file of the folder (results and errors), read
    when the log is opened. ``write(record)`` appends one line (``record`` gets the run's id); ``close()``.
    Raises ``UserError`` when ``run.json`` or a line names other settings."""

    def __init__(self, folder: str, settings: dict, rank: int = 0, world_size: int = 1):
        self.folder = folder
        self.settings = settings
        self.run = run_id(settings)
        name = 'results.jsonl' if world_size == 1 else f'results.rank{rank}.jsonl'
        self.path = os.path.join(folder, name)
        os.makedirs(folder, exist_ok=True)
        self._check_run_file()
        self.done = self._read_done()
        self._cut_partial_line()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._write_run_file()

    def _refuse(self, where: str, other: str) -> None:
        raise UserError(
            f'{where} was written by another model or other settings (run {other}, this run {self.run}); '
            f'give a new --result_dir, or the same model and options as that run (its {RUN_FILE} lists them).'
        )

    def _check_run_file(self) -> None:
        path = os.path.join(self.folder, RUN_FILE)
        if not os.path.exists(path):
            return
        try:
            with open(path, encoding='utf-8') as handle:
                stored = json.load(handle)
        except (OSError, ValueError) as error:
            raise UserError(f"'{path}' cannot be read ({error}); give a new --result_dir.") from None
        if stored.get('run') != self.run:
            theirs = stored.get('settings', {})
            changed = [
                key for key in sorted(set(theirs) | set(self.settings)) if theirs.get(key) != self.settings.get(key)
            ]
            what = ', '.join(f'{key} {theirs.get(key)!r} there, {self.settings.get(key)!r} here' for key in changed[:3])
            raise UserError(
                f"The result folder '{self.folder}' holds results of other settings ({what or 'another run'}); "
                f'give a new --result_dir, or the options of that run ({RUN_FILE} lists them) to finish it.'
            )

    def _read_done(self) -> set:
        done = set()
        for path in _result_files(self.folder):
            for number, line in enumerate(_whole_lines(path)[0], start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise UserError(f"'{path}' line {number} is not JSON; give a new --result_dir.") from None
                if record.get('run') != self.run:
                    self._refuse(f"'{path}' line {number}", str(record.get('run')))
                done.add(record['image'])
        return done

    def _cut_partial_line(self) -> None:
        """Cuts off this process's own cut last line (left by a killed run); other processes' files are only read."""
        if os.path.exists(self.path):
            end = _whole_lines(self.path)[1]
            if end != os.path.getsize(self.path):
                os.truncate(self.path, end)

    def _write_run_file(self) -> None:
        path = os.path.join(self.folder, RUN_FILE)
        temporary = f'{path}.{os.getpid()}.tmp'
        with open(temporary, 'w', encoding='utf-8') as handle:
            json.dump({'run': self.run, 'settings': self.settings}, handle, indent=1, sort_keys=True, default=str)
        os.replace(temporary, path)  # every process writes the same content; a reader sees one whole file

    def write(self, record: dict) -> None:
        data = (json.dumps({**record, 'run': self.run}) + '\n').encode('utf-8')
        while data:  # os.write on a regular file writes all at once; the loop covers a short write
            data = data[os.write(self._fd, data) :]
        self.done.add(record['image'])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
