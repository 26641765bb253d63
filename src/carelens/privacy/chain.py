"""A linear-chain CRF's marginals in numpy, from the weights of a CRFsuite model file.

CRFsuite's own tagger takes each token's attributes as strings and looks each one up; carelens sums a
token's weights once per distinct token (``crf.TokenScores``) and runs forward-backward here, which gives
CRFsuite's marginals to ~1e-14 at a fraction of the cost. The model file's layout is CRFsuite's
``crf1dm.c``: a header of offsets, then a chunk of features (type, source, destination, float64 weight),
state features (attribute -> label) of type 0 and transitions (label -> label) of type 1.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_HEADER = struct.Struct("<4sI4s9I")  # magic, size, type, version, features, labels, attributes, 6 offsets
_FEATURE = np.dtype([("type", "<i4"), ("src", "<i4"), ("dst", "<i4"), ("weight", "<f8")])


@dataclass(frozen=True)
class ChainWeights:
    """State weights (attribute x label), transition weights (from x to) and the names of both axes."""

    labels: tuple[str, ...]
    attributes: dict[str, int]
    state: np.ndarray
    transition: np.ndarray

    def summed(self, attributes: tuple[str, ...] | list[str]) -> np.ndarray:
        """The state scores a token with these attributes gets (an attribute the model lacks adds nothing)."""
        index = self.attributes
        ids = [index[a] for a in attributes if a in index]
        return self.state[ids].sum(axis=0)


def read_weights(path: Path, info: Any) -> ChainWeights:
    """The weights of the model file at ``path``; ``info``: its ``pycrfsuite.Tagger.info()`` (the names of
    its labels and attributes; its weights are printed to six decimals, so they are read from the file)."""
    data = path.read_bytes()
    magic, _, kind, _, _, n_labels, n_attributes, features_at, *_ = _HEADER.unpack_from(data, 0)
    chunk, _, n_features = struct.unpack_from("<4sII", data, features_at)
    if magic != b"lCRF" or kind != b"FOMC" or chunk != b"FEAT":
        raise ValueError(f"{path.name} is not a CRFsuite linear-chain model")
    rows = np.frombuffer(data, dtype=_FEATURE, count=n_features, offset=features_at + 12)
    state = np.zeros((n_attributes, n_labels))
    transition = np.zeros((n_labels, n_labels))
    kept = rows[rows["type"] == 0]
    state[kept["src"], kept["dst"]] = kept["weight"]
    moves = rows[rows["type"] == 1]
    transition[moves["src"], moves["dst"]] = moves["weight"]
    labels = [""] * n_labels
    for name, i in info.labels.items():
        labels[int(i)] = name
    attributes = {name: int(i) for name, i in info.attributes.items()}
    return ChainWeights(tuple(labels), attributes, state, transition)


def marginals(scores: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """P(label of token t = k | the sequence) for state ``scores`` (tokens x labels) and ``transition``
    weights, by forward-backward. Products are scaled as they go (a token's marginal is normalised at the
    end, so scales cancel)."""
    n, size = scores.shape
    odds = np.exp(scores - scores.max(axis=1, keepdims=True))
    if n == 1:
        return odds / odds.sum(axis=1, keepdims=True)
    steps = np.exp(transition)[None, :, :] * odds[1:, None, :]  # steps[t][i, j]: label i at t to j at t + 1
    # forward: odds[0] @ steps[0] @ ... @ steps[t]; backward, transposed: 1 @ steps[n-2].T @ ... @ steps[t].T
    forward, backward = _vector_products(
        np.stack([odds[0], np.ones(size)]), np.stack([steps, steps[::-1].transpose(0, 2, 1)])
    )
    alpha = np.concatenate([odds[:1], forward])
    beta = np.concatenate([backward[::-1], np.ones((1, size))])
    joint = alpha * beta
    return joint / joint.sum(axis=1, keepdims=True)


def _vector_products(starts: np.ndarray, chains: np.ndarray) -> np.ndarray:
    """``out[c, t] = starts[c] @ chains[c, 0] @ ... @ chains[c, t]`` for each chain ``c``, each scaled to its
    largest entry. Blocks of ~sqrt(2 n) matrices are multiplied out side by side (rescaled every
    ``_RESCALE`` steps), then a vector is carried from block to block: about 2 sqrt(2 n) numpy steps, not n."""
    count_chains, n, size, _ = chains.shape
    width = max(1, int((2 * n) ** 0.5))
    count = -(-n // width)
    pad = np.broadcast_to(np.eye(size), (count_chains, count * width - n, size, size))
    blocks = np.concatenate([chains, pad], axis=1).reshape(count_chains, count, width, size, size)
    within = np.ascontiguousarray(blocks.transpose(2, 0, 1, 3, 4))  # [j, c, b]: blocks[c, b, 0] @ ... @ [c, b, j]
    for j in range(1, width):
        product = within[j - 1] @ within[j]
        if j % _RESCALE == 0 or j == width - 1:
            product /= product.reshape(count_chains, count, -1).max(axis=2)[:, :, None, None]
        within[j] = product
    carried = np.empty((count, count_chains, 1, size))  # starts @ every block before b
    carried[0, :, 0] = starts
    for b in range(1, count):
        vector = carried[b - 1] @ within[-1, :, b - 1]
        carried[b] = vector / vector.max(axis=2, keepdims=True)
    side_by_side = within.transpose(1, 2, 3, 0, 4).reshape(count_chains, count, size, width * size)
    out = carried.transpose(1, 0, 2, 3) @ side_by_side  # one product a block: [c, b, 0, j * size + k]
    out = out.reshape(count_chains, count * width, size)[:, :n]
    return out / out.max(axis=2, keepdims=True)


# Steps multiplied between two rescalings: a step's largest entry lies between exp(min transition weight) and
# size * exp(max transition weight) (each token's likeliest label has odds 1), so float64 holds 4 steps
# for transition weights within +-40 (CRFsuite's, L2-regularised, lie within +-10).
_RESCALE = 4
