"""The workspace's clinician feedback on one registered model, per site: what ``carelens.models.monitoring``
turns into the HTI-1 validity and fairness monitoring attributes. Only counts leave this module."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carelens.models.monitoring import age_group, summarise_feedback
from carelens.server.registry import registry_id
from carelens.store.appdb import CdsCard, CdsFeedback, ReviewDecision


def _decisions(s: Session) -> list[tuple[str, str, str, str | None, str]]:
    """(item, patient, action, model_version, at): the newest workspace decision per item, and every CDS outcome."""
    newest: dict[tuple[str, str], tuple[str, str, str, str | None, str]] = {}
    rows = s.execute(
        select(
            ReviewDecision.patient_id,
            ReviewDecision.item_key,
            ReviewDecision.action,
            ReviewDecision.model_version,
            ReviewDecision.created_at,
        ).order_by(ReviewDecision.id)
    )
    for pid, key, action, model, at in rows:
        newest[(pid, key)] = (key, pid, action, model, at)
    cds = s.execute(
        select(CdsFeedback.card_uuid, CdsCard.patient_id, CdsFeedback.outcome, CdsCard.model_version,
               CdsFeedback.outcome_at).join(CdsCard, CdsCard.uuid == CdsFeedback.card_uuid)
    )  # fmt: skip
    return [*newest.values(), *((str(c), str(p), str(o), m, str(at)) for c, p, o, m, at in cds)]


def feedback_summary(ctx: Any, model_id: str) -> list[dict[str, Any]]:
    """This site's monitoring summary of the registered model ``model_id`` (a one-item list), from every
    decision whose output names that model (by registry id, name or weights hash)."""
    store = ctx.settings.store
    known: dict[str, str | None] = {}
    people: dict[str, tuple[str, str]] = {}
    with ctx.Session() as s:
        rows = _decisions(s)
    decisions = []
    for _key, pid, action, model, at in rows:
        ref = (model or "").rsplit("@", 1)[0]
        if ref not in known:
            known[ref] = registry_id(store, ref) if ref else None
        if known[ref] != model_id:
            continue
        if pid not in people:
            patient = ctx.data.patient(pid)
            people[pid] = (
                (patient.gender if patient is not None else None) or "unknown",
                age_group(patient.birth_date if patient is not None else None),
            )
        sex, age = people[pid]
        decisions.append({"action": action, "patient": pid, "sex": sex, "age_group": age, "at": at})
    return [summarise_feedback(decisions, ctx.settings.site)]


def record_monitoring(store: Any = None, model: str = "") -> dict[str, Any]:
    """Append this site's monitoring summary of ``model`` (from the store's app database and clinical data)
    to its registry entry as a ``monitoring`` record (``carelens models monitor``); returns the record."""
    from types import SimpleNamespace

    from sqlalchemy.orm import sessionmaker

    from carelens.models import Registry
    from carelens.server.context import default_data
    from carelens.server.settings import ServerSettings
    from carelens.store.appdb import get_engine

    settings = ServerSettings.from_env(store)
    registry = Registry(settings.store)
    model_id = registry_id(settings.store, model) or registry.resolve(model)  # also an image package's weights hash
    ctx = SimpleNamespace(
        settings=settings, Session=sessionmaker(get_engine(settings.db_url)), data=default_data(settings)
    )
    return registry.append_record(model_id, "monitoring", {"sites": feedback_summary(ctx, model_id)})
