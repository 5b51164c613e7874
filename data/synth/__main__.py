"""``python -m data.synth``: the generator's command line (data/synth/cli.py)."""

import sys

from concern.cli import run_main
from data.synth.cli import main

sys.exit(run_main(main))
