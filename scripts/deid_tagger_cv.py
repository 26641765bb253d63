"""The dilated-CNN tagger (``scripts/deid_tagger.py``) as a second learned layer beside the CRF, on the
all-patient CV folds of ``scripts/deid_cv.py train --everyone`` (aggregates only: half of the patients are
the held-out part; no note text is printed).

    PYTHONPATH=src:scripts .venv/bin/python scripts/deid_tagger_cv.py train /tmp/crf.pkl /tmp/tag.pkl [--epochs 5]
    PYTHONPATH=src:scripts .venv/bin/python scripts/deid_tagger_cv.py score /tmp/crf.pkl /tmp/tag.pkl [--modes ...]

``train`` fits one tagger per fold on that fold's training patients (their notes and an ALL CAPS copy of each,
the fold CRF's vocabulary) and stores its marginals for the fold's test notes, per CRF piece (same keys as the
CRF cache). ``score`` runs ``detect_phi`` with, in the CRF's place: the CRF alone, the tagger alone, their
union (per token the lower P(O) and the higher of each PHI class), their mean, and a stacked logistic
combination fitted on the other folds' test tokens (leave-one-fold-out), and ``gateX``: the CRF, with the union
where the tagger's P(PHI) reaches X; per fold and summed, with a
patient bootstrap of the recall and precision differences against the CRF alone.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from deid_cv import _fit_half, _key, evaluate
from deid_tagger import CLASSES, combine, fit_tagger

from carelens.core.config import shared_data_dir
from carelens.privacy import crf as C
from carelens.privacy.corpus import Note, Score, patient_fold, per_type_total
from carelens.privacy.detect import layer_spans
from carelens.privacy.training import token_labels, upper_copies


def _pieces(text: str) -> list[list[C.CrfToken]]:
    """The CRF's pieces of a note (``CrfModel.spans``)."""
    tokens = C.crf_tokens(text)
    out, start = [], 0
    while start < len(tokens):
        end = C._cut(text, tokens, start + C.CHUNK)
        out.append(tokens[start:end])
        start = end
    return out


def _crf_inputs(labels: list[str], rows: list[list[float]]) -> np.ndarray:
    """[n, 8]: the CRF's P(PHI), its logit scaled to [-1, 1], and its 6 PHI-class marginals (``CLASSES`` order)."""
    m = np.array(rows, np.float32)[:, [labels.index(c) if c in labels else 0 for c in CLASSES]]
    m[:, [CLASSES.index(c) for c in CLASSES if c not in labels]] = 0.0
    phi = 1 - m[:, 0]
    return np.concatenate([phi[:, None], np.clip(_logit(phi), -15, 15)[:, None] / 15, m[:, 1:]], axis=1)


def train(data: Path, crf_cache: Path, out: Path, epochs: int, hidden: int, seed: int, phi_weight: float = 3.0,
          stack: bool = False) -> None:  # fmt: skip
    """With ``stack``, the CRF's out-of-fold marginals of each note (from the cache) are inputs of the tagger
    (trained on the real notes only: the ALL CAPS copies have no cached marginals)."""
    result = pickle.loads(crf_cache.read_bytes())
    notes = {n.id: n for n in _fit_half(data, result.get("everyone", False))}
    folds = len(result["folds"])
    store_of = {i: fold["store"] for fold in result["folds"].values() for i in fold["notes"]}

    def crf_inputs(note: Note) -> np.ndarray:
        parts = [_crf_inputs(*store_of[note.id][_key(note.text, piece)]) for piece in _pieces(note.text)]
        return np.concatenate(parts) if parts else np.zeros((0, 8), np.float32)

    stores: dict = {"folds": {}, "cpu_s": {}}
    for k, fold in result["folds"].items():
        cpu = time.process_time()
        train_notes = [n for n in notes.values() if patient_fold(n.patient, folds) != k]
        tagger = fit_tagger(
            train_notes if stack else train_notes + upper_copies(train_notes),
            fold["vocabulary"],
            epochs=epochs,
            hidden=hidden,
            phi_weight=phi_weight,
            seed=seed,
            on_step=lambda s: print(s, file=sys.stderr, flush=True),
            extra=crf_inputs if stack else None,
        )
        fit_s = time.process_time() - cpu
        store = {}
        for i in fold["notes"]:
            text = notes[i].text
            ctoks = C.crf_tokens(text)
            hints = C.token_hints(ctoks, layer_spans(text))
            by_start = {t.start: h for t, h in zip(ctoks, hints, strict=True)}
            for piece in _pieces(text):
                key = _key(text, piece)
                more = _crf_inputs(*fold["store"][key]) if stack else None
                store[key] = tagger.marginals(text, piece, [by_start[t.start] for t in piece], more)
        stores["folds"][k] = store
        stores["cpu_s"][k] = round(fit_s, 1)
        print(f"fold {k}: fit {fit_s:.0f} CPU-s", file=sys.stderr, flush=True)
    out.write_bytes(pickle.dumps(stores))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _combine(labels: list[str], crf_rows: list[list[float]], tag: np.ndarray, mode: str,
             coef: np.ndarray | None) -> list[list[float]]:  # fmt: skip
    """Marginals in the CRF's label order for ``mode`` (``tagger.combine``, or stacked)."""
    if mode.startswith("gate"):  # "gate0.9": the CRF, and the union where the tagger's P(PHI) reaches 0.9
        out = combine(labels, crf_rows, tag, "crf")
        gate = 1 - tag[:, 0] >= float(mode[4:])
        out[gate] = combine(labels, crf_rows, tag, "union")[gate]
        return out.tolist()
    if mode != "stacked":
        return combine(labels, crf_rows, tag, mode).tolist()
    assert coef is not None  # P(PHI) from a logistic combination, the classes split as the mean
    crf = np.array(crf_rows)
    o = labels.index("O")
    t = tag[:, [CLASSES.index(lab) for lab in labels]]
    z = np.stack([_logit(1 - crf[:, o]), _logit(1 - t[:, o])], axis=1)
    phi = 1 / (1 + np.exp(-(z @ coef[:2] + coef[2])))
    mean = (crf + t) / 2
    mean[:, o] = 0
    out = mean / np.maximum(mean.sum(axis=1, keepdims=True), 1e-9) * phi[:, None]
    out[:, o] = 1 - phi
    return out.tolist()


def _stack_coef(notes: dict[str, Note], result: dict, tags: dict, skip: int) -> np.ndarray:
    """Logistic regression of "token is PHI" on the two models' logits, on the test tokens of the other folds."""
    from sklearn.linear_model import LogisticRegression

    xs, ys = [], []
    for k, fold in result["folds"].items():
        if k == skip:
            continue
        for i in fold["notes"]:
            text = notes[i].text
            gold = [lab != "O" for lab in token_labels(notes[i])]
            a = 0
            for piece in _pieces(text):
                labels, rows = fold["store"][_key(text, piece)]
                crf = 1 - np.array(rows)[:, labels.index("O")]
                tag = 1 - tags["folds"][k][_key(text, piece)][:, 0]
                xs.append(np.stack([_logit(crf), _logit(tag)], axis=1))
                ys += gold[a : a + len(piece)]
                a += len(piece)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(np.concatenate(xs), np.array(ys))
    return np.array([*model.coef_[0], model.intercept_[0]])


def _patient_scores(notes: dict[str, Note], result: dict, threshold: float) -> dict[str, Score]:
    per: dict[str, Score] = {}

    def add(note: Note, spans: list) -> None:
        per.setdefault(note.patient, Score()).add(note.text, note.spans, [(s.start, s.end) for s in spans])

    evaluate(notes, result, threshold, on_note=add)
    return per


def _bootstrap(a: dict[str, Score], b: dict[str, Score], rounds: int = 2000, seed: int = 14) -> str:
    """95% interval of (b - a) in recall and precision, resampling patients."""
    pats = sorted(a)
    rng = np.random.default_rng(seed)
    cols = np.array([[sum(a[p].found.values()), sum(b[p].found.values()), sum(a[p].gold.values()),
                      a[p].tp, a[p].fp, b[p].tp, b[p].fp] for p in pats], float)  # fmt: skip
    dr, dp = [], []
    for _ in range(rounds):
        s = cols[rng.integers(0, len(pats), len(pats))].sum(axis=0)
        dr.append((s[1] - s[0]) / max(s[2], 1))
        dp.append(s[5] / max(s[5] + s[6], 1) - s[3] / max(s[3] + s[4], 1))
    r, p = np.percentile(dr, [2.5, 97.5]), np.percentile(dp, [2.5, 97.5])
    return f"d_recall 95% [{r[0]:+.4f}, {r[1]:+.4f}] d_precision 95% [{p[0]:+.4f}, {p[1]:+.4f}]"


def score(data: Path, crf_cache: Path, tag_cache: Path, thresholds: list[float], modes: list[str]) -> None:
    result = pickle.loads(crf_cache.read_bytes())
    tags = pickle.loads(tag_cache.read_bytes())
    notes = {n.id: n for n in _fit_half(data, result.get("everyone", False))}
    coefs = {k: _stack_coef(notes, result, tags, k) for k in result["folds"]} if "stacked" in modes else {}
    for k, c in coefs.items():
        print(f"stacked coef fold {k}: crf {c[0]:.3f} tagger {c[1]:.3f} bias {c[2]:.3f}")
    base: dict[float, dict[str, Score]] = {}
    for mode in modes:
        combined = {"everyone": result.get("everyone"), "folds": {}}
        for k, fold in result["folds"].items():
            store = {key: (labels, _combine(labels, rows, tags["folds"][k][key], mode, coefs.get(k)))
                     for key, (labels, rows) in fold["store"].items()}  # fmt: skip
            combined["folds"][k] = {**fold, "store": store}
        for t in thresholds:
            per = _patient_scores(notes, combined, t)
            n_folds = len(result["folds"])
            folds = [per_type_total(v for p, v in per.items() if patient_fold(p, n_folds) == k) for k in range(n_folds)]
            total = per_type_total(folds)
            per_type = " ".join(f"{k}={r:.3f}/{n}" for k, (r, n) in total.per_type().items())
            by_fold = " ".join(f"{s.recall:.3f}/{s.precision:.3f}" for s in folds)
            print(f"{mode:7s} t={t:<6} recall {total.recall:.4f} precision {total.precision:.4f} F2 {total.f(2):.4f} "
                  f"| {per_type} | folds {by_fold}", flush=True)  # fmt: skip
            if mode == "crf":
                base[t] = per
            else:
                for bt in sorted({t, SHIPPED} & set(base)):
                    print(f"        vs crf at t={bt}: {_bootstrap(base[bt], per)}", flush=True)


SHIPPED = 0.03  # the CRF's shipped threshold: every row is also compared with it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("train", "score"))
    parser.add_argument("crf_cache", type=Path)
    parser.add_argument("tag_cache", type=Path)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--phi-weight", type=float, default=3.0, help="train: loss weight of the PHI classes")
    parser.add_argument("--stack", action="store_true", help="train: the CRF's out-of-fold marginals as inputs")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.03])
    parser.add_argument("--modes", nargs="+", default=["crf", "tagger", "union", "mean", "stacked"])
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("shared data not found (../shared/data or CARELENS_SHARED_DATA)")
    if args.command == "train":
        train(data, args.crf_cache, args.tag_cache, args.epochs, args.hidden, args.seed, args.phi_weight, args.stack)
    else:
        score(data, args.crf_cache, args.tag_cache, args.thresholds, args.modes)


if __name__ == "__main__":
    main()
