# ruff: noqa: E501
"""Benchmark: text de-identification on real and synthetic notes, carelens now vs carelens before
issue #14 (commit f33608e) vs Presidio: token recall, precision, F2 per PHI type, notes per CPU-second.

Corpora: (a) the held-out-by-patient part of ``deid/physionet-dev`` (real ICU nursing notes; the
fixed split of ``carelens.privacy.corpus``; scored with a CRF fit on the fit part only, ``--crf``), (b) the
demo cohort's generated notes, (c) the held-out part (by template) of Presidio's synthetic set.
Scoring everywhere is physionet-dev's README scorer (``carelens.privacy.corpus.Score``): a gold
``\\w+`` token is found when a detected span overlaps it; a detected token is a true positive when it
overlaps a gold span; a year alone and non-identifier types (titles, nationalities, ages <= 89) are
not counted against recall. Presidio runs offline with a blank spaCy pipeline and its pattern
recognizers. The old detector runs in a subprocess from ``git archive f33608e src``.

    PYTHONPATH=src .venv/bin/python benchmarks/deid_text.py [--patients 30] [--seed 23] [--skip-old] [--crf DIR]

When the shipped CRF was fit on every patient (``carelens deid train``'s default), (a) is scored with the model
``carelens deid train --fit-half-only --out DIR`` makes with the same code (the old protocol): given as ``--crf DIR``,
or trained by this script into a temporary folder.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from carelens.core.config import shared_data_dir
from carelens.privacy.corpus import Note, Score, by_class, load_corpus, load_presidio, split_by_patient

OLD_COMMIT = "f33608e"
REPO = Path(__file__).resolve().parents[1]
OLD_RUNNER = """
import json, sys, time
from carelens.privacy.detect import detect_phi
texts = json.load(open(sys.argv[1]))
detect_phi("warm up Dr. Smith 1/2/2020")
c0 = time.process_time()
out = [[(s.start, s.end) for s in detect_phi(t)] for t in texts]
json.dump({"cpu": time.process_time() - c0, "spans": out}, open(sys.argv[2], "w"))
"""


def run(notes: list[Note], detect, name: str) -> dict:
    c0, t0 = time.process_time(), time.perf_counter()
    predictions = [detect(n.text) for n in notes]
    return result(notes, predictions, name, time.process_time() - c0, time.perf_counter() - t0)


def result(notes: list[Note], predictions: list, name: str, cpu: float, wall: float | None = None) -> dict:
    score = Score()
    for note, pred in zip(notes, predictions, strict=True):
        score.add(note.text, note.spans, pred)
    return {"name": name, "score": score, "notes_per_cpu_s": len(notes) / max(cpu, 1e-9),
            "notes_per_s": len(notes) / max(wall, 1e-9) if wall else None}  # fmt: skip


def old_detector(notes: list[Note], tmp: Path) -> dict:
    """The detector as it was before issue #14, in its own interpreter."""
    src = tmp / "old"
    src.mkdir(exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", OLD_COMMIT, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    texts, out = tmp / "texts.json", tmp / "old-out.json"
    texts.write_text(json.dumps([n.text for n in notes]))
    env = {**os.environ, "PYTHONPATH": str(src / "src")}
    subprocess.run([sys.executable, "-c", OLD_RUNNER, str(texts), str(out)], check=True, env=env)
    data = json.loads(out.read_text())
    return result(notes, data["spans"], f"carelens before #14 ({OLD_COMMIT})", data["cpu"])


def carelens_detector(crf=None):
    from carelens.privacy.detect import detect_phi

    detect_phi("warm up Dr. Smith 1/2/2020", crf=crf)
    return lambda text: [(s.start, s.end) for s in detect_phi(text, crf=crf)]


def run_batch(notes: list[Note], crf=None) -> dict:
    """carelens with propagation across each patient's notes (as ``deid text`` over a patient's folder)."""
    from carelens.privacy.batch import add_batch_names, confident_names
    from carelens.privacy.crf import crf_model
    from carelens.privacy.detect import merge_spans, proposals

    model = crf or crf_model()
    vocabulary = model.vocabulary if model is not None else frozenset()
    c0, t0 = time.process_time(), time.perf_counter()
    found = [proposals(n.text, crf=crf) for n in notes]
    names: dict[str, set] = {}
    for n, p in zip(notes, found, strict=True):
        names.setdefault(n.patient, set()).update(confident_names(n.text, p, vocabulary))
    predictions = []
    for n, p in zip(notes, found, strict=True):
        spans = merge_spans(p, n.text)
        spans = merge_spans(spans + add_batch_names(n.text, spans, names[n.patient]), n.text)
        predictions.append([(s.start, s.end) for s in spans])
    return result(notes, predictions, "carelens, batch per patient", time.process_time() - c0, time.perf_counter() - t0)


def shipped_saw_held_out() -> bool:
    """Whether the shipped CRF was fit on every patient of physionet-dev (its train report says so)."""
    from importlib import resources

    meta = json.loads(resources.files("carelens.privacy").joinpath("data", "deid_crf.json").read_text())
    return bool(meta.get("report", {}).get("all_patients", False))


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


def demo_notes(patients: int, seed: int, tmp: Path) -> list[Note]:
    from carelens.demo import generate_cohort

    out = tmp / "cohort"
    generate_cohort(out, patients=patients, seed=seed, training_images=False)
    notes = []
    for txt in sorted((out / "notes").glob("*.txt")):
        gold = json.loads(txt.with_name(txt.stem + ".phi.json").read_text())
        notes.append(
            Note(
                txt.stem,
                txt.stem.split("_")[0],
                txt.read_text(),
                tuple((g["start"], g["end"], g["type"]) for g in gold),
            )
        )
    return notes


def table(title: str, results: list[dict], classes: bool = False) -> str:
    lines = [
        f"#### {title}",
        "",
        "| system | recall | precision | F2 | notes per CPU-second |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        s = r["score"]
        lines.append(
            f"| {r['name']} | {s.recall:.3f} | {s.precision:.3f} | {s.f(2):.3f} | {r['notes_per_cpu_s']:.0f} |"
        )
    per = [r["score"].per_type() for r in results]
    kinds = sorted({k for p in per for k in p})
    lines += [
        "",
        "| type (gold tokens): recall | " + " | ".join(r["name"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for k in kinds:
        lines.append(
            f"| {k} ({per[0].get(k, (0, 0))[1]}) | "
            + " | ".join(f"{p.get(k, (float('nan'), 0))[0]:.3f}" for p in per)
            + " |"
        )
    if classes:
        cls = [by_class(r["score"]) for r in results]
        for k in sorted({k for c in cls for k in c}):
            lines.append(
                f"| all {k} ({cls[0].get(k, (0, 0))[1]}) | "
                + " | ".join(f"{c.get(k, (float('nan'), 0))[0]:.3f}" for c in cls)
                + " |"
            )
    return "\n".join(lines) + "\n"


def command_row(notes: list[Note], tmp: Path, seen: bool) -> str:
    """The whole ``carelens deid text`` command over the held-out notes (start-up, reading, writing)."""
    folder = tmp / "heldout-notes"
    folder.mkdir()
    for n in notes:
        (folder / f"{n.id}.txt").write_text(n.text)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "carelens.cli", "deid", "text", str(folder), "--out", str(tmp / "out")],
                   check=True, capture_output=True)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    score = Score()
    for n in notes:
        spans = json.loads((tmp / "out" / f"{n.id}.phi.json").read_text())
        score.add(n.text, n.spans, [(s["start"], s["end"]) for s in spans])
    caveat = " (the shipped model was fit on these patients too: no held-out figure)" if seen else ""
    return (
        f"`carelens deid text` on the {len(notes)} held-out notes (one run, start-up included): wall {wall:.1f} s, "
        f"CPU {cpu:.1f} s ({len(notes) / cpu:.0f} notes per CPU-second); its .phi.json spans score recall "
        f"{score.recall:.3f}, precision {score.precision:.3f}{caveat}.\n"
    )


def fit_half_model(data: Path) -> Path:
    """The CRF ``carelens deid train --fit-half-only`` makes (fit part only), trained into a temporary folder:
    the shipped model saw the held-out patients, so (a) needs this one (about a CPU-minute)."""
    from carelens.privacy.training import build

    out = Path(tempfile.mkdtemp(prefix="carelens-deid-fit-half-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    print("the shipped CRF saw every patient: training the fit-half model for (a) ...", file=sys.stderr, flush=True)
    build(data, out, all_patients=False, rotation=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=30)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--skip-old", action="store_true", help="do not run the pre-#14 detector")
    parser.add_argument("--skip-presidio", action="store_true", help="do not run Presidio")
    parser.add_argument(
        "--crf", type=Path, help="for (a): a model from `carelens deid train --fit-half-only --out DIR`"
    )
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("shared data not found (../shared/data or CARELENS_SHARED_DATA)")
    from carelens.privacy.crf import crf_model, load_crf

    shipped = crf_model()
    seen = shipped is not None and shipped_saw_held_out()
    crf_dir = args.crf
    if seen and crf_dir is None:
        crf_dir = fit_half_model(data)
    held_crf = load_crf(crf_dir) if crf_dir else None
    ours = carelens_detector()
    theirs = None if args.skip_presidio else presidio_detector()
    corpora = [("(a) physionet-dev, held-out patients", split_by_patient(load_corpus(data / "deid" / "physionet-dev"))[1], True),
               ("(c) Presidio synthetic set, held-out templates", split_by_patient(load_presidio(data / "deid" / "presidio_synth_dataset_v2.json"))[1], False)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        demo = demo_notes(args.patients, args.seed, tmp)
        corpora.insert(1, (f"(b) demo cohort notes ({args.patients} patients, seed {args.seed})", demo, False))
        print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}\n")
        for title, notes, classes in corpora:
            real = title.startswith("(a)") and held_crf is not None
            detector = carelens_detector(held_crf) if real else ours
            results = [run(notes, detector, "carelens"), run_batch(notes, held_crf if real else None)]
            if not args.skip_old:
                sub = tmp / f"old{len(results)}{len(title)}"
                sub.mkdir()
                results.append(old_detector(notes, sub))
            if theirs is not None:
                results.append(run(notes, theirs, "presidio"))
            n_pat = len({n.patient for n in notes})
            print(table(f"{title}: {len(notes)} notes, {n_pat} patients/templates", results, classes), flush=True)
        print(command_row(corpora[0][1], tmp, seen))
        print(f"load average at end: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
