"""Model cards for the "model card" links: the ``carelens.models`` registry when it is
installed, else cards saved as ``<store>/models/<id>/card.json``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

MODEL_ID = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")


def _saved_cards(store: Path) -> list[dict[str, Any]]:
    cards = []
    for path in sorted((store / "models").glob("*/card.json")):
        try:
            card = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if isinstance(card, dict):
            cards.append({"id": path.parent.name, **card})
    return cards


def list_models(store: Path) -> list[dict[str, Any]]:
    """Every registered model's card (plain data, at least an ``id``)."""
    try:
        from carelens.models import list_models as registry_list  # type: ignore[attr-defined]
    except ImportError:
        return _saved_cards(store)
    found = registry_list(store)
    models = found.get("models", found) if isinstance(found, dict) else found
    return [m.model_dump(mode="json") if hasattr(m, "model_dump") else dict(m) for m in models]


def model_card(store: Path, model_id: str) -> dict[str, Any] | None:
    """The card of one model (matched on ``id``, or on ``id@version``), or None."""
    base = model_id.split("@", 1)[0]
    for card in list_models(store):
        if str(card.get("id")) in (model_id, base) or str(card.get("name")) == base:
            return card
    return None
