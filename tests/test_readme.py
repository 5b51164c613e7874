"""The README's commands: the detection command runs as written (on the shipped model, a few seconds), and every
other command line names a script that exists and only flags that script accepts."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from concern.result_log import detections_by_image
from tests import ROOT


def bash_lines() -> list[str]:
    """The command lines of the README's bash blocks (comments removed, continuation lines joined)."""
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as handle:
        blocks = re.findall(r'```bash\n(.*?)```', handle.read(), flags=re.DOTALL)
    lines = []
    for block in blocks:
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split(' # ')[0].strip()
            if line:
                lines.append(line)
    return lines


def python_commands() -> list[list[str]]:
    """Each ``python ...`` / ``torchrun ... script.py`` command of the README, from the script on."""
    commands = []
    for line in bash_lines():
        for part in line.split('&&'):
            words = shlex.split(part.strip())
            if words[:1] == ['torchrun']:
                words = ['python'] + words[next(i for i, w in enumerate(words) if w.endswith('.py')) :]
            if words[:1] == ['python'] and words[1:2] != ['-m'] or words[1:3] in (['-m', 'tools.score_results'],):
                commands.append(words[1:])
    return commands


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


@pytest.mark.parametrize('script', ['train.py', 'eval.py', 'demo.py', 'convert_to_onnx.py', 'tools.score_results'])
def test_every_flag_of_the_readme_is_accepted(script):
    commands = [words for words in python_commands() if words[:1] == [script] or words[:2] == ['-m', script]]
    assert commands, f'the README has no {script} command'
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
    pages = [os.path.join(ROOT, 'README.md')] + [
        os.path.join(ROOT, 'docs', name)
        for name in sorted(os.listdir(os.path.join(ROOT, 'docs')))
        if name.endswith('.md')
    ]
    broken = []
    for page in pages:
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
