"""Finer (``resd/Finer-v0``): FiNER-139 XBRL tagging in ACE's batched record format.

Public pieces: :func:`score` (ACE scoring of one response), :func:`extract_answer`,
:func:`read_records` (validated ACE JSONL), :data:`LABELS` (the 139 tag names),
:class:`FinerFamily` and :class:`FinerEnv`. The data is user-provided; see ``docs/finer.md``.
"""

from resd_envs.finer.extract import Extraction, extract_answer
from resd_envs.finer.labels import LABELS
from resd_envs.finer.records import FinerRecord, Question, RecordFormatError, read_records
from resd_envs.finer.scoring import FinerScore, score

__all__ = [
    "LABELS",
    "Extraction",
    "FinerRecord",
    "FinerScore",
    "Question",
    "RecordFormatError",
    "extract_answer",
    "read_records",
    "score",
]
