"""Patient-grouped cross-validation of the text de-identifier INSIDE the fit half of physionet-dev
(the held-out patients are never read; ``--everyone``: over all patients, aggregates only), with the
CRF marginals cached so that changes after the CRF (cues, rules, filters, thresholds) are scored in
seconds without retraining (``--alone``: the CRF's own spans only, the measure of what the learned layer generalises).

    PYTHONPATH=src .venv/bin/python scripts/deid_cv.py train /tmp/cv.pkl [--folds 4] [--iterations 100]
    PYTHONPATH=src .venv/bin/python scripts/deid_cv.py score /tmp/cv.pkl [--threshold 0.03] [--errors]
    PYTHONPATH=src .venv/bin/python scripts/deid_cv.py all /tmp/cv.json [--folds 4] [--thresholds 0.02 0.03]
    PYTHONPATH=src .venv/bin/python scripts/deid_cv.py compare /tmp/a.pkl /tmp/b.pkl  # two ``score --save`` files

``all`` is the development measure over ALL 82 patients (``carelens.privacy.training.cross_validate``:
the loop ``deid train`` uses for its rotation and CV); it prints aggregate figures per type only and
writes them as JSON to the given path (no note text, no misses: half of those patients are the held-out part).

``train --everyone`` caches the marginals of the same all-patient folds as ``all`` (the same figures), so that
changes after the CRF are scored over all 82 patients in seconds; ``score`` then prints aggregates only
(``--errors`` is refused: half of those patients are the held-out part).

``train`` fits one CRF per fold (``carelens.privacy.training.train`` on the other folds, their ALL CAPS
copies and the synthetic notes, as ``deid train`` does) and stores, per test note, the marginals of
every token; ``score`` runs ``detect_phi`` with those marginals in place of the CRF and prints the
corpus README's token scores (``--errors``: every missed gold token in context, then the commonest
false positives by type and source).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from carelens.core.config import shared_data_dir
from carelens.privacy import crf as C
from carelens.privacy.batch import add_batch_names, confident_names
from carelens.privacy.corpus import (
    WORD,
    Note,
    Score,
    load_corpus,
    load_presidio,
    patient_fold,
    per_type_total,
    split_by_patient,
)
from carelens.privacy.detect import detect_phi, merge_spans, proposals


def _key(text: str, tokens: list[C.CrfToken]) -> tuple[str, int]:
    return hashlib.sha256(text.encode()).hexdigest(), tokens[0].start if tokens else 0


class _Recording(C.CrfModel):
    """The CRF, remembering the marginals of what it tags."""

    store: dict

    def _tag(self, text, tokens, hints):
        marginals = self.marginals(text, tokens, hints)
        self.store[_key(text, tokens)] = (list(self.scorer.weights.labels), marginals.tolist())
        return self.decide(text, tokens, hints, self.scorer.weights.labels, marginals)


class _Cached(C.CrfModel):
    """Stored marginals in place of the CRF (``CrfModel.decide``, as the CRF itself decides)."""

    store: dict

    def _tag(self, text, tokens, hints):
        labels, marginals = self.store[_key(text, tokens)]
        return self.decide(text, tokens, hints, labels, np.asarray(marginals).reshape(len(tokens), len(labels)))


def _fit_half(data: Path, everyone: bool = False) -> list[Note]:
    notes = load_corpus(data / "deid" / "physionet-dev")
    return notes if everyone else split_by_patient(notes)[0]


def train(
    data: Path, out: Path, folds: int, iterations: int, swaps: int, seed: int = 14, everyone: bool = False
) -> None:
    from carelens.privacy.training import DEMO_PATIENTS, DEMO_SEED, demo_notes, upper_copies
    from carelens.privacy.training import train as fit

    notes = _fit_half(data, everyone)
    extra = split_by_patient(load_presidio(data / "deid" / "presidio_synth_dataset_v2.json"))[0]
    extra += demo_notes(DEMO_PATIENTS, DEMO_SEED)
    result: dict = {"folds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(folds):
            cpu = time.process_time()
            train_notes = [n for n in notes if patient_fold(n.patient, folds) != k]
            test_notes = [n for n in notes if patient_fold(n.patient, folds) == k]
            model = fit(
                train_notes + upper_copies(train_notes) + extra,
                Path(tmp) / f"f{k}.crfsuite",
                iterations=iterations,
                swaps=swaps,
                seed=seed,
            )
            recorder = _Recording(model.path, model.vocabulary, model.threshold)
            recorder.store = {}
            for n in test_notes:
                detect_phi(n.text, crf=recorder)
            result["everyone"] = everyone
            result["folds"][k] = {
                "vocabulary": model.vocabulary,
                "store": recorder.store,
                "notes": [n.id for n in test_notes],
            }
            print(f"fold {k + 1}/{folds}: {time.process_time() - cpu:.0f} CPU-s", file=sys.stderr, flush=True)
    out.write_bytes(pickle.dumps(result))


def score(data: Path, cache: Path, threshold: float, errors: bool, batch: str, alone: bool = False,
          english: float = 0.5, word: float = 0.9, save: Path | None = None) -> None:  # fmt: skip
    result = pickle.loads(cache.read_bytes())
    if result.get("everyone") and errors:
        sys.exit("--errors reads notes: not on a cache of every patient (half of them are the held-out part)")
    notes = {n.id: n for n in _fit_half(data, result.get("everyone", False))}
    missed: list[str] = []
    false_pos: Counter[tuple[str, str, str]] = Counter()
    patients: dict[str, Score] = {}

    def on_note(note: Note, spans: list) -> None:
        if errors:
            _errors(note, spans, missed, false_pos)
        patients.setdefault(note.patient, Score()).add(note.text, note.spans, [(s.start, s.end) for s in spans])

    folds = evaluate(notes, result, threshold, batch, alone, english, word, on_note)
    total = per_type_total(folds)
    if save is not None:
        save.write_bytes(pickle.dumps({"patients": patients, "folds": [f.as_dict() for f in folds]}))
    per_type = " ".join(f"{k}={r:.3f}/{n}" for k, (r, n) in total.per_type().items())
    print(f"recall {total.recall:.4f} precision {total.precision:.4f} F2 {total.f(2):.4f} | {per_type}")
    for line in sorted(missed):
        print(line)
    for (kind, source, word), n in false_pos.most_common(400):
        print(f"FP {n:3d} {kind}/{source}: {word}")


def evaluate(notes: dict[str, Note], result: dict, threshold: float, batch: str = "none", alone: bool = False,
             english: float = 0.5, word: float = 0.9, on_note=None) -> list[Score]:  # fmt: skip
    """The corpus score of each fold of a cache (``result``), its stored marginals in place of the CRF."""
    scores = []
    for fold in result["folds"].values():
        total = Score()
        model = _Cached(Path("/dev/null"), fold["vocabulary"], threshold, word, english)
        model.store = fold["store"]
        found = {i: proposals(notes[i].text, crf=model) for i in fold["notes"]}
        names: dict[str, set] = {}
        for i in fold["notes"]:
            group = "" if batch == "fold" else notes[i].patient if batch == "patient" else i
            names.setdefault(group, set()).update(confident_names(notes[i].text, found[i], fold["vocabulary"]))
        for note_id in fold["notes"]:
            note = notes[note_id]
            group = "" if batch == "fold" else note.patient if batch == "patient" else note_id
            spans = merge_spans(found[note_id], note.text)
            if alone:  # the CRF's own spans, without rules, cues or filters
                ctoks = C.crf_tokens(note.text)
                spans = model.spans(note.text, ctoks, [None] * len(ctoks))
            elif batch != "none":
                spans = merge_spans(spans + add_batch_names(note.text, spans, names[group]), note.text)
            total.add(note.text, note.spans, [(s.start, s.end) for s in spans])
            if on_note is not None:
                on_note(note, spans)
        scores.append(total)
    return scores


def _errors(note: Note, spans: list, missed: list[str], false_pos: Counter) -> None:
    for m in WORD.finditer(note.text):
        a, b = m.span()
        kinds = [k for s, e, k in note.spans if s < b and a < e]
        hits = [s for s in spans if s.start < b and a < s.end]
        if kinds and kinds[0] not in ("DateYear", "NotPHI") and not hits:
            missed.append(f"MISS {kinds[0]}: {note.text[max(0, a - 40) : b + 30]!r}")
        if hits and not kinds:
            false_pos[(hits[0].type, hits[0].source, m.group(0).lower())] += 1


def compare(a: Path, b: Path, rounds: int = 2000, seed: int = 14) -> None:
    """Per-fold figures of two ``score --save`` files and a patient bootstrap (95%) of b - a."""

    runs = [pickle.loads(p.read_bytes()) for p in (a, b)]
    for name, run in zip("ab", runs, strict=True):
        folds = " ".join(f"{f['recall']:.3f}/{f['precision']:.3f}" for f in run["folds"])
        print(f"{name}: folds (recall/precision) {folds}")
    pats = sorted(runs[0]["patients"])
    x, y = runs[0]["patients"], runs[1]["patients"]
    cols = np.array([[sum(x[p].found.values()), sum(y[p].found.values()), sum(x[p].gold.values()),
                      x[p].tp, x[p].fp, y[p].tp, y[p].fp] for p in pats], float)  # fmt: skip
    rng = np.random.default_rng(seed)
    draws = cols[rng.integers(0, len(pats), (rounds, len(pats)))].sum(axis=1)
    d_recall = (draws[:, 1] - draws[:, 0]) / np.maximum(draws[:, 2], 1)
    d_precision = draws[:, 5] / np.maximum(draws[:, 5] + draws[:, 6], 1) - draws[:, 3] / np.maximum(
        draws[:, 3] + draws[:, 4], 1
    )
    s = cols.sum(axis=0)
    print(f"gold tokens found {s[0]:.0f} -> {s[1]:.0f} of {s[2]:.0f}; false positives {s[4]:.0f} -> {s[6]:.0f}")
    r, p = np.percentile(d_recall, [2.5, 97.5]), np.percentile(d_precision, [2.5, 97.5])
    print(f"patient bootstrap ({rounds}): d recall [{r[0]:+.4f}, {r[1]:+.4f}], d precision [{p[0]:+.4f}, {p[1]:+.4f}]")


def all_patients(data: Path, out: Path, folds: int, thresholds: tuple[float, ...], iterations: int, c1: float,
                 c2: float, min_count: int) -> None:  # fmt: skip
    import json

    from carelens.privacy.training import cross_validate

    cpu = time.process_time()

    def step(s: str) -> None:
        print(s, f"{time.process_time() - cpu:.0f} CPU-s", file=sys.stderr, flush=True)

    result = cross_validate(data, folds, thresholds, iterations, c1, c2, min_count, on_step=step)
    result["cpu_s"] = round(time.process_time() - cpu, 1)
    out.write_text(json.dumps(result, indent=1))
    for t, r in result.get("by_threshold", {str(thresholds[0]): result}).items():
        per_type = " ".join(f"{k}={v['recall']:.3f}/{v['tokens']}" for k, v in r["per_type"].items())
        print(f"t={t} recall {r['recall']:.4f} precision {r['precision']:.4f} F2 {r['f2']:.4f} | {per_type}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("train", "score", "all", "compare"))
    parser.add_argument("cache", type=Path)
    parser.add_argument("other", type=Path, nargs="?", help="compare: the second --save file (b in b - a)")
    parser.add_argument("--save", type=Path, help="score: write per-patient and per-fold scores (for compare)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--swaps", type=int, default=0, help="surrogate-swapped copies of each training note")
    parser.add_argument("--seed", type=int, default=14, help="seed of the swapped copies")
    parser.add_argument("--threshold", type=float, default=0.03)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.03], help="all: thresholds scored")
    parser.add_argument("--c1", type=float, default=0.05)
    parser.add_argument("--c2", type=float, default=0.01)
    parser.add_argument("--min-count", type=int, default=3, help="all: occurrences for a word feature")
    parser.add_argument("--english-threshold", type=float, default=0.5, help="score: for English words of no list")
    parser.add_argument("--word-threshold", type=float, default=0.9, help="score: for words of the vocabulary")
    parser.add_argument("--errors", action="store_true")
    parser.add_argument(
        "--everyone", action="store_true", help="train: folds over all 82 patients (then score prints aggregates only)"
    )
    parser.add_argument("--alone", action="store_true", help="score the CRF's own spans (no rules, cues, filters)")
    parser.add_argument(
        "--batch",
        choices=("none", "fold", "patient"),
        default="none",
        help="propagate confident names across the notes of a fold or of a patient",
    )
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("shared data not found (../shared/data or CARELENS_SHARED_DATA)")
    if args.command == "compare":
        compare(args.cache, args.other)
    elif args.command == "all":
        all_patients(data, args.cache, args.folds, tuple(args.thresholds), args.iterations, args.c1, args.c2,
                     args.min_count)  # fmt: skip
    elif args.command == "train":
        train(data, args.cache, args.folds, args.iterations, args.swaps, args.seed, args.everyone)
    else:
        score(data, args.cache, args.threshold, args.errors, args.batch, args.alone, args.english_threshold,
              args.word_threshold, args.save)  # fmt: skip


if __name__ == "__main__":
    main()
