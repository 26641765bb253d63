"""The summary as Markdown for people to read."""

from __future__ import annotations

from carelens.record.schema import Summary, SummaryItem


def _cites(item: SummaryItem) -> str:
    parts = []
    for c in item.citations:
        parts.append(f"{c.resource} [{c.note_span[0]}:{c.note_span[1]}]" if c.note_span else c.resource)
    return "; ".join(parts)


def _line(item: SummaryItem) -> str:
    marks = [f for f in item.flags if f in {"note-only", "conflict", "recently stopped", "critical", "worsening"}]
    mark = f" **[{', '.join(marks)}]**" if marks else ""
    return f"- {item.text}{mark}  \n  <sub>source: {_cites(item)}</sub>"


def to_markdown(summary: Summary) -> str:
    """Readable Markdown: needs attention first, then each section, then what was dropped."""
    out = [
        f"# Patient summary ({summary.patient})",
        "",
        f"_Generated automatically by {summary.generated_by}; every line cites the record entries it rests on._",
        "",
    ]
    if summary.needs_attention:
        out += ["## Needs attention", ""] + [_line(i) for i in summary.needs_attention] + [""]
    if summary.narrative:
        out += ["## Narrative", "", " ".join(i.text for i in summary.narrative), ""]
    for section in summary.sections:
        out += [f"## {section.title} (LOINC {section.code})", ""]
        if section.items:
            out += [_line(i) for i in section.items]
            if section.omitted:
                out.append(f"- ... and {section.omitted} older entries")
        else:
            out.append(f"_{section.empty_reason}_")
        out.append("")
    notes = summary.notes
    if notes.total:
        out += [f"_Notes: read the newest {notes.read} of {notes.total} with NLP._", ""]
    if summary.dropped:
        out += ["## Dropped by the citation checker", ""] + [f"- {d.text} ({d.reason})" for d in summary.dropped] + [""]
    if summary.warnings:
        out += ["## Warnings", ""] + [f"- {w}" for w in summary.warnings] + [""]
    return "\n".join(out)
