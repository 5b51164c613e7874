"""Ground-truth readers, one module per format; each returns ``(lines, problems)`` (see ``common``)."""

from .common import DONT_CARE, AnnotationError
from .ctw1500 import read_ctw1500, read_ctw1500_txt, read_ctw1500_xml
from .db_txt import format_db_line, read_db_txt, read_icdar2015
from .gnhk import read_gnhk
from .synthtext import SynthTextGroundTruth
from .td500 import read_td500
from .totaltext import read_totaltext_legacy, read_totaltext_mat

__all__ = [
    'DONT_CARE',
    'AnnotationError',
    'SynthTextGroundTruth',
    'format_db_line',
    'read_ctw1500',
    'read_ctw1500_txt',
    'read_ctw1500_xml',
    'read_db_txt',
    'read_gnhk',
    'read_icdar2015',
    'read_td500',
    'read_totaltext_legacy',
    'read_totaltext_mat',
]
