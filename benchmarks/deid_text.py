# ruff: noqa: E501
"""Benchmark: text de-identification, carelens vs Presidio, token-level recall/precision/F2 and notes/s.

Corpora: (a) the demo cohort's notes with gold PHI spans (generated into a temp folder),
(b) ``deid/presidio_synth_dataset_v2.json`` from the shared data. A gold PHI token counts as
found when any detected span covers it (type-agnostic, as in the i2b2 "binary token" metric).
Presidio runs offline with a blank spaCy ``en`` pipeline (no NER model can be downloaded) and
all its predefined pattern recognizers.

    .venv/bin/python benchmarks/deid_text.py [--patients 30] [--seed 7] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from carelens.core.config import shared_data_dir

TOKEN = re.compile(r"\w+", re.UNICODE)

# Presidio dataset types that are Safe Harbor identifiers (TITLE and NRP are not; AGE only over 89;
# DATE_TIME only with more than a year; GPE only below country level).
PRESIDIO_SKIP = {"TITLE", "NRP"}


def tokens(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in TOKEN.finditer(text)]


def covered(tok: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(s < tok[1] and tok[0] < e for s, e in spans)


def score(docs: list[dict], detect, name: str) -> dict:
    """docs: [{"text", "gold": [(start, end, type, counted)]}]; detect(text) -> [(start, end)]."""
    per_type: dict[str, Counter] = defaultdict(Counter)
    tp = fp = fn = 0
    t0, c0 = time.perf_counter(), time.process_time()
    predictions = [detect(d["text"]) for d in docs]
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    for doc, pred in zip(docs, predictions, strict=True):
        for tok in tokens(doc["text"]):
            gold = [g for g in doc["gold"] if g[0] < tok[1] and tok[0] < g[1]]
            hit = covered(tok, pred)
            if gold:
                counted = [g for g in gold if g[3]]
                if not counted:
                    continue  # a token of a non-identifier type (TITLE, NRP, age <= 89): neutral
                kind = counted[0][2]
                per_type[kind]["gold"] += 1
                per_type[kind]["found"] += hit
                tp += hit
                fn += not hit
            elif hit:
                fp += 1
    recall = tp / max(tp + fn, 1)
    precision = tp / max(tp + fp, 1)
    return {
        "name": name,
        "recall": recall,
        "precision": precision,
        "f2": f_beta(precision, recall, 2),
        "notes_per_s": len(docs) / max(elapsed, 1e-9),
        "notes_per_cpu_s": len(docs) / max(cpu, 1e-9),
        "per_type": {k: v["found"] / v["gold"] for k, v in sorted(per_type.items())},
        "per_type_n": {k: v["gold"] for k, v in sorted(per_type.items())},
    }


def f_beta(p: float, r: float, beta: float) -> float:
    return (1 + beta**2) * p * r / max(beta**2 * p + r, 1e-9)


def demo_docs(patients: int, seed: int, tmp: Path) -> tuple[list[dict], Path] | None:
    try:
        from carelens.demo import generate_cohort
    except ImportError:
        print("demo cohort generator not available: skipping corpus (a)", file=sys.stderr)
        return None
    out = tmp / "cohort"
    generate_cohort(out, patients=patients, seed=seed)
    docs = []
    for txt in sorted((out / "notes").glob("*.txt")):
        gold_file = txt.with_name(txt.stem + ".phi.json")
        if not gold_file.exists():
            continue
        gold = json.loads(gold_file.read_text())
        docs.append({"text": txt.read_text(), "gold": [(g["start"], g["end"], g["type"], True) for g in gold],
                     "path": txt})  # fmt: skip
    return docs, out


def presidio_docs(limit: int | None) -> list[dict]:
    data_dir = shared_data_dir()
    if data_dir is None:
        print("shared data not found: skipping corpus (b)", file=sys.stderr)
        return []
    rows = json.loads((data_dir / "deid" / "presidio_synth_dataset_v2.json").read_text())
    countries = _countries()
    docs = []
    for row in rows[:limit]:
        gold = []
        for s in row["spans"]:
            kind, value = s["entity_type"], s["entity_value"]
            counted = kind not in PRESIDIO_SKIP
            if kind == "AGE":
                counted = value.strip().isdigit() and int(value) > 89
            if kind == "DATE_TIME":
                counted = not re.fullmatch(r"\s*\d{4}s?\s*", value)
            if kind == "GPE":
                counted = value.strip().lower() not in countries
            gold.append((s["start_position"], s["end_position"], kind, counted))
        docs.append({"text": row["full_text"], "gold": gold})
    return docs


def _countries() -> set[str]:
    from faker.providers.address.en_US import Provider

    return {c.lower() for c in Provider.countries} | {"usa", "us", "uk", "united states", "america"}


def carelens_detector():
    from carelens.privacy.detect import detect_phi

    detect_phi("warm up Dr. Smith 1/2/2020")
    return lambda text: [(s.start, s.end) for s in detect_phi(text)]


def carelens_with_context(docs: list[dict], cohort: Path):
    """Detector that also uses each note's patient (known identifiers) from the cohort's FHIR."""
    from carelens.privacy.detect import detect_phi
    from carelens.privacy.fhir import load_patients
    from carelens.privacy.keys import KeyService

    keys = KeyService(b"benchmark-secret-not-for-production")
    patients = load_patients([cohort / "fhir"], keys) if (cohort / "fhir").exists() else {}
    by_text = {}
    for d in docs:
        stem = d["path"].stem
        ctx = next((patients[k] for k in (stem, stem.split("_")[0], stem.split("-note")[0]) if k in patients), None)
        by_text[id(d["text"])] = ctx
    return lambda text: [(s.start, s.end) for s in detect_phi(text, by_text.get(id(text)))]


def presidio_detector():
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    tmp = Path(tempfile.mkdtemp()) / "blank_en"
    spacy.blank("en").to_disk(tmp)
    provider = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
                                                    "models": [{"lang_code": "en", "model_name": str(tmp)}]})  # fmt: skip
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    engine.analyze("warm up 212-555-0100", language="en")
    return lambda text: [(r.start, r.end) for r in engine.analyze(text, language="en", score_threshold=0.0)]


def table(title: str, results: list[dict]) -> str:
    lines = [
        f"### {title}",
        "",
        "| system | recall | precision | F2 | notes/s (wall) | notes per CPU-second |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['f2']:.3f} | {r['notes_per_s']:.0f} "
            f"| {r['notes_per_cpu_s']:.0f} |"
        )
    kinds = sorted({k for r in results for k in r["per_type"]})
    lines += ["", "| type (gold tokens) | " + " | ".join(r["name"] for r in results) + " |",
              "|---|" + "---|" * len(results)]  # fmt: skip
    for k in kinds:
        n = results[0]["per_type_n"].get(k, 0)
        lines.append(
            f"| {k} ({n}) | " + " | ".join(f"{r['per_type'].get(k, float('nan')):.3f}" for r in results) + " |"
        )
    return "\n".join(lines) + "\n"


def command_table(docs: list[dict], cohort: Path, tmp: Path) -> str:
    """The whole ``carelens deid text`` command over the same notes (start-up, reading, surrogates and
    writing included), as the acceptance run calls it; ``carelens --version`` is its start-up alone."""
    notes = tmp / "notes-only"
    notes.mkdir()
    for d in docs:
        (notes / d["path"].name).write_text(d["text"])
    runs = [("carelens deid text", ["deid", "text", str(notes), "--out", str(tmp / "out-plain")]),
            ("carelens deid text --fhir", ["deid", "text", str(notes), "--out", str(tmp / "out-fhir"), "--fhir",
                                           str(cohort / "fhir")]),
            ("start-up alone (carelens --version)", ["--version"])]  # fmt: skip
    lines = [f"### (a') the whole command over the same {len(docs)} notes (one run each)", "",
             "| command | wall s | notes/s | CPU s | notes per CPU-second |", "|---|---|---|---|---|"]  # fmt: skip
    for name, args in runs:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "carelens.cli", *args], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        rate = "-" if args == ["--version"] else f"{len(docs) / wall:.0f}"
        per_cpu = "-" if args == ["--version"] else f"{len(docs) / cpu:.0f}"
        lines.append(f"| {name} | {wall:.2f} | {rate} | {cpu:.2f} | {per_cpu} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=None, help="first N Presidio sentences only")
    args = parser.parse_args()
    ours = carelens_detector()
    theirs = presidio_detector()
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        demo = demo_docs(args.patients, args.seed, Path(tmp))
        if demo:
            docs, cohort = demo
            results = [score(docs, ours, "carelens"), score(docs, carelens_with_context(docs, cohort),
                       "carelens + patient FHIR"), score(docs, theirs, "presidio")]  # fmt: skip
            report.append(table(f"(a) demo cohort notes ({len(docs)} notes, {args.patients} patients, seed {args.seed})",
                                results))  # fmt: skip
            report.append(command_table(docs, cohort, Path(tmp)))
    pdocs = presidio_docs(args.limit)
    if pdocs:
        results = [score(pdocs, ours, "carelens"), score(pdocs, theirs, "presidio")]
        report.append(table(f"(b) presidio_synth_dataset_v2 ({len(pdocs)} sentences)", results))
    print("\n".join(report))


if __name__ == "__main__":
    main()
