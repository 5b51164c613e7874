"""The README's and the guides' commands: the README's detection command runs as written (on the shipped model, a
few seconds), every other command line of a bash block names a script that exists and only flags that script
accepts, and every link and anchor resolves."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from concern.result_log import detections_by_image
from tests import ROOT


def pages() -> list[str]:
    """README.md and the guides in docs/."""
    docs = os.path.join(ROOT, 'docs')
    return [README] + [os.path.join(docs, name) for name in sorted(os.listdir(docs)) if name.endswith('.md')]


README = os.path.join(ROOT, 'README.md')


def bash_lines(paths=(README,)) -> list[str]:
    """The command lines of the bash blocks of ``paths`` (comments removed, continuation lines joined)."""
    lines = []
    for path in paths:
        with open(path, encoding='utf-8') as handle:
            blocks = re.findall(r'```bash\n(.*?)```', handle.read(), flags=re.DOTALL)
        for block in blocks:
            for line in block.replace('\\\n', ' ').splitlines():
                line = line.split(' # ')[0].strip()
                if line and not line.startswith('#'):
                    lines.append(line)
    return lines


def python_commands() -> list[list[str]]:
    """Each ``python ...`` / ``torchrun ... script.py`` command of the README and the guides, from the script on
    (``['-m', module, ...]`` for a module)."""
    commands = []
    for line in bash_lines(pages()):
        for part in line.split('&&'):
            words = shlex.split(part.strip())
            if words[:1] == ['torchrun'] and any(word.endswith('.py') for word in words):
                words = ['python'] + words[next(i for i, w in enumerate(words) if w.endswith('.py')) :]
            if words[:1] == ['python'] and words[1:3] != ['-m', 'pytest']:
                commands.append(words[1:])
    return commands


SCRIPTS = [
    'train.py',
    'eval.py',
    'demo.py',
    'convert_to_onnx.py',
    'tools.score_results',
    'tools.split_dataset',
    'tools.pack_model',
    'benchmarks.bench_train_pipeline',
    'benchmarks.bench_train_step',
]


def test_every_command_names_a_script_listed_here():
    named = {words[1] if words[0] == '-m' else words[0] for words in python_commands()}
    assert named == set(SCRIPTS), named ^ set(SCRIPTS)


def test_the_detection_command_runs_as_written(tmp_path):
    (line,) = [line for line in bash_lines() if line.startswith('pip install -r requirements.txt && python demo.py')]
    command = shlex.split(line.split('&&', 1)[1])
    command[command.index('--result_dir') + 1] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = detections_by_image(str(tmp_path))
    assert len(found) == 5 and sum(map(len, found.values())) >= 10
    assert len([name for name in os.listdir(tmp_path) if name.endswith('.jpg')]) == 5  # --visualize


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_flag_of_the_readme_and_the_guides_is_accepted(script):
    commands = [words for words in python_commands() if words[:1] == [script] or words[:2] == ['-m', script]]
    assert commands, f'no page runs {script}'
    runner = ['-m', script] if not script.endswith('.py') else [script]
    help_text = subprocess.run(
        [sys.executable, *runner, '--help'],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for words in commands:
        for flag in (word.split('=')[0] for word in words if word.startswith('--')):
            assert flag in help_text, f'{flag} of `{" ".join(words)}` is not an option of {script}'


def heading_anchors(path: str) -> set:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            heading = re.match(r'^#+ (.*)', line)
            if heading:
                anchors.add(re.sub(r'[^\w\- ]', '', heading.group(1).strip().lower()).replace(' ', '-'))
    return anchors


def test_every_link_of_the_readme_and_the_guides_resolves():
    broken = []
    for page in pages():
        with open(page, encoding='utf-8') as handle:
            text = handle.read()
        for target, anchor in re.findall(r'\]\(([^)#\s]*)(#[^)\s]*)?\)', text):
            if target.startswith(('http://', 'https://')):
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
            if not os.path.exists(path):
                broken.append(f'{os.path.relpath(page, ROOT)}: {target} does not exist')
            elif anchor and path.endswith('.md') and anchor[1:] not in heading_anchors(path):
                broken.append(f'{os.path.relpath(page, ROOT)}: {target}{anchor} names no heading')
    assert not broken, broken
