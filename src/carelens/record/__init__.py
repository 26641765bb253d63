"""carelens.record: a patient's record model, the cited IPS summary, note NLP, record search."""

from carelens.record.checker import check_summary, item_problem
from carelens.record.load import load_record, load_records
from carelens.record.model import Note, PatientRecord, build_record
from carelens.record.schema import Dropped, Section, Summary, SummaryItem
from carelens.record.summary import summarize, summarize_record

__all__ = [
    "Dropped",
    "Note",
    "PatientRecord",
    "Section",
    "Summary",
    "SummaryItem",
    "build_record",
    "check_summary",
    "item_problem",
    "load_record",
    "load_records",
    "summarize",
    "summarize_record",
]
