"""The test suite. ``ROOT`` is the repository's root folder (the scripts, experiments/ and assets/ live there)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
