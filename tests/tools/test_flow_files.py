"""tools/flow_files.py: the two flows of docs/architecture.md are measured, and the page says what is measured."""

import os
import re
import subprocess
import sys

from tests import ROOT

DOC = os.path.join(ROOT, 'docs', 'architecture.md')


def documented_flows() -> dict:
    """{'training': (count, files), 'image': (count, count without --visualize, files)} from the page's two
    flow sections: the '(N files...)' of each '## ' heading and its numbered '`path`' entries, in order."""
    with open(DOC, encoding='utf-8') as handle:
        sections = re.split(r'^## ', handle.read(), flags=re.MULTILINE)
    training = next(section for section in sections if section.startswith('1. A training sample'))
    image = next(section for section in sections if section.startswith('2. An image'))

    def entries(section):
        return re.findall(r'^\d+\. `([^`]+)`', section, flags=re.MULTILINE)

    training_count = int(re.search(r'\((\d+) files\)', training.splitlines()[0]).group(1))
    image_counts = re.search(r'\((\d+) files; (\d+) without `--visualize`\)', image.splitlines()[0])
    return {
        'training': (training_count, entries(training)),
        'image': (int(image_counts.group(1)), int(image_counts.group(2)), entries(image)),
    }


def measured_flows() -> dict:
    """{title: files} printed by ``python -m tools.flow_files`` (no dataset: its synthetic sample)."""
    output = subprocess.run(
        [sys.executable, '-m', 'tools.flow_files'], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    ).stdout
    flows, title = {}, None
    for line in output.splitlines():
        heading = re.match(r'^(\S.*) \((\d+) files\)$', line)
        entry = re.match(r'^\s*(\d+)\. (\S+) — ', line)
        if heading:
            title = heading.group(1)
            flows[title] = (int(heading.group(2)), [])
        elif entry:
            flows[title][1].append(entry.group(2))
            assert int(entry.group(1)) == len(flows[title][1])
    for count, files in flows.values():
        assert count == len(files)
    return flows


def test_the_architecture_page_lists_the_measured_files_in_order():
    documented = documented_flows()
    measured = measured_flows()
    training = measured['A training sample: disk to loss']
    image = measured['An image: demo.py to result files (--visualize)']
    image_plain = measured['An image: demo.py to result files (without --visualize)']

    assert documented['training'] == training
    assert documented['image'] == (image[0], image_plain[0], image[1])
    # the flows are the real ones: from the dataset to the loss, from demo.py to the result file
    order = training[1].index
    assert order('data/image_dataset.py') < order('training/trainer.py') < order('decoders/seg_detector_loss.py')
    assert image[1][0] == 'demo.py' and 'concern/result_files.py' in image[1]
    assert image_plain[1] == [path for path in image[1] if 'visualizers' not in path]
    for path in training[1] + image[1]:
        assert os.path.isfile(os.path.join(ROOT, path)), path
