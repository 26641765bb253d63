"""Bad input to the text de-identifier: a one-line reason or a correct result, never a crash,
nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.privacy import text as text_mod
from carelens.privacy.keys import KeyService
from carelens.privacy.text import deidentify_text


@pytest.mark.parametrize("note", ["x", ".", "7", "\n\n\n  a"])
def test_a_note_of_one_character_is_a_correct_result(note: str, keys: KeyService) -> None:
    res = deidentify_text(note, keys=keys)
    assert res.text == note or all(note[s.start : s.end] == s.text for s in res.spans)


def test_a_note_that_is_all_phi_is_all_replaced(keys: KeyService) -> None:
    note = "Dr. Zebulon Quixley 617-555-0199 3/14/2019"
    res = deidentify_text(note, keys=keys)
    assert "Quixley" not in res.text and "555-0199" not in res.text and "3/14/2019" not in res.text
    assert all(note[s.start : s.end] == s.text for s in res.spans)


def test_control_characters_keep_offsets_exact(keys: KeyService) -> None:
    note = "Pt\x0bseen by Dr.\x07Quixley\x00 on 3/14/2019;\x1b[0m son Zebulon called 617-555-0199.\r\n"
    res = deidentify_text(note, keys=keys)
    for s in res.spans:
        assert note[s.start : s.end] == s.text
    assert "617-555-0199" not in res.text and "3/14/2019" not in res.text


def _notes(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    """A folder of notes (bytes written as they are)."""
    src = tmp_path / "notes"
    src.mkdir()
    for name, content in files.items():
        path = src / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return src


def test_cli_quarantines_what_it_cannot_read_with_one_line_reasons(
    tmp_path: Path, secret_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _notes(
        tmp_path,
        {
            "one.txt": "x",
            "caps.txt": "PT SEEN BY DR QUIXLEY 7/22. SON ZEB CALLED X4-5678.\n",
            "bad.txt": b"Pt Zebulon \xff\xfe seen",
            "big.txt": "Pt stable. " * 200,
        },
    )
    monkeypatch.setattr(text_mod, "MAX_NOTE_BYTES", 1000)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["deid", "text", str(src), "--out", str(out)])
    assert res.exit_code == 3, res.output
    report = json.loads(res.stdout)
    assert report["done"] == {"notes": 2}
    reasons = {Path(q["item"]).name if "item" in q else str(q): q["reason"] for q in report["quarantined"]}
    assert len(report["quarantined"]) == 2
    assert all("\n" not in r and "Zebulon" not in r for r in reasons.values())
    assert sorted(p.name for p in out.iterdir()) == ["caps.phi.json", "caps.txt", "one.phi.json", "one.txt"]
    caps = (out / "caps.txt").read_text()
    assert "QUIXLEY" not in caps and "X4-5678" not in caps


def test_superscript_digits_are_read_not_a_crash(keys: KeyService) -> None:
    """ "x10³/µL" and "m²": str.isdigit() calls a superscript a digit, int() refuses it."""
    note = "WBC 12 x10³/µL, BSA 1.9 m², seen by Dr. Quixley on 3/14/2019 ³ ² ¹²"
    res = deidentify_text(note, keys=keys)
    assert "Quixley" not in res.text and "3/14/2019" not in res.text
    assert "x10³/µL" in res.text and "m²" in res.text
    assert all(note[s.start : s.end] == s.text for s in res.spans)


def test_a_note_the_detector_fails_on_is_quarantined_and_the_batch_goes_on(
    tmp_path: Path, secret_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _notes(
        tmp_path,
        {
            "a.txt": "Seen by Dr. Quixley on 3/14/2019.",
            "b.txt": "Zebulon Quixley TRIGGER note.",
            "c.txt": "Son Zeb called 617-555-0199.",
        },
    )
    real = text_mod.proposals

    def failing(text: str, context: object = None) -> list:
        if "TRIGGER" in text:
            raise ZeroDivisionError("Zebulon Quixley")  # an internal error whose message holds PHI
        return real(text, context)

    monkeypatch.setattr(text_mod, "proposals", failing)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["deid", "text", str(src), "--out", str(out)])
    report = json.loads(res.stdout)
    assert report["done"] == {"notes": 2} and len(report["quarantined"]) == 1
    reason = report["quarantined"][0]["reason"]
    assert reason == "internal error (ZeroDivisionError); nothing written" and "Quixley" not in res.output
    assert sorted(p.name for p in out.iterdir()) == ["a.phi.json", "a.txt", "c.phi.json", "c.txt"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_note_saved_with_a_byte_order_mark_is_read_in_its_encoding(
    encoding: str, tmp_path: Path, secret_env: Path
) -> None:
    """Windows saves "Unicode" text as UTF-16 with a byte order mark: such a note was quarantined as "binary
    file, not text (NUL bytes)" by ``deid text`` and as a binary note by ``ingest``."""
    from carelens.ingest import ingest
    from carelens.store import Lake

    note = "Seen by Dr. Quixley on 3/14/2019; wife Zuzanna called 617-555-0199.\n"
    data = note.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # the explicit codecs write no mark
    src = _notes(tmp_path, {"a.txt": data, "b.txt": "Pt stable.\n"})
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["deid", "text", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    written = (out / "a.txt").read_text(encoding="utf-8")
    assert "Quixley" not in written and "617-555-0199" not in written and not written.startswith("\ufeff")
    spans = json.loads((out / "a.phi.json").read_text())
    assert spans and all(note[s["start"] : s["end"]] == s["text"] for s in spans)
    result = ingest([src], tmp_path / "store", processes=1)
    assert not result.quarantined and result.ingested()["notes"] == 2
    texts = Lake(tmp_path / "store").query("SELECT text FROM notes").column(0).to_pylist()
    assert note in texts
