"""Builders of the IPS sections from structured data: one small function per section.

Each returns the section's items, every one citing the resources it rests on; texts only hold
names, numbers and dates copied from those resources, so that the citation checker can verify
them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from carelens.core import Citation
from carelens.record.fields import (
    categories,
    codes,
    codings,
    display,
    first_day,
    fmt_number,
    has_code,
    quantity,
    status_code,
)
from carelens.record.model import PatientRecord, resource_key
from carelens.record.schema import SummaryItem
from carelens.record.vocab import (
    KEY_LABS,
    NO_KNOWN_ALLERGY,
    NO_KNOWN_MEDICATION,
    NO_KNOWN_PROBLEM,
    SMOKING_STATUS,
    Lab,
)

#: Cap on the items of long history sections (the rest are counted in ``omitted``).
HISTORY_LIMIT = 20
RECENT_ENCOUNTERS = 5
RECENTLY_STOPPED_DAYS = 365

_INACTIVE_VERIFICATION = {"refuted", "entered-in-error"}


def cite(*resources: dict[str, Any]) -> list[Citation]:
    """Citations of whole resources."""
    return [Citation(resource=resource_key(r)) for r in resources]


def record_today(record: PatientRecord) -> str:
    """The record's "now": the latest encounter start (records may be years old), else today."""
    days = [first_day(e, "period") for e in record.of_type("Encounter")]
    latest = max((d for d in days if d), default=None)
    return latest or date.today().isoformat()


def statement_of(concept: Any, table: dict[str, str]) -> str | None:
    """What a coded "nothing to list" statement says (``no known ...`` or ``no information``),
    when ``concept`` is one of the codes of ``table``."""
    return next((table[c["code"]] for c in codings(concept) if c.get("code") in table), None)


def stated_absence(statements: list[tuple[dict[str, Any], str]], *dates: str) -> tuple[str, list[Citation]]:
    """Why a required section is empty: what the newest of the ``(resource, statement)`` pairs
    says, citing it; ``no information`` (citing nothing) when the record says nothing."""
    if not statements:
        return "no information", []
    resource, said = max(statements, key=lambda pair: first_day(pair[0], *dates) or "")
    return said, cite(resource)


def _by_code(resources: list[dict[str, Any]], field: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for res in resources:
        key = (codes(res.get(field)) or [display(res.get(field)).lower()])[0]
        groups[key].append(res)
    return groups


# --- problems and past illness -------------------------------------------------------------


def is_active_condition(cond: dict[str, Any]) -> bool:
    """Active (or recurrence/relapse, or no status and no abatement) and not refuted."""
    if status_code(cond.get("verificationStatus")) in _INACTIVE_VERIFICATION:
        return False
    status = status_code(cond.get("clinicalStatus"))
    if status is None:
        return not any(k.startswith("abatement") for k in cond)
    return status in {"active", "recurrence", "relapse"}


def _problem_statement(cond: dict[str, Any]) -> str | None:
    return statement_of(cond.get("code"), NO_KNOWN_PROBLEM)


def problems(record: PatientRecord) -> list[SummaryItem]:
    """Active problems with their onset (one item per code, citing every active resource)."""
    active = [c for c in record.of_type("Condition") if is_active_condition(c) and not _problem_statement(c)]
    items = []
    for group in _by_code(active, "code").values():
        onsets = sorted(d for d in (first_day(c, "onsetDateTime", "onsetPeriod", "recordedDate") for c in group) if d)
        name = display(group[0].get("code"))
        text = f"{name} (onset {onsets[0]})" if onsets else name
        items.append(
            SummaryItem(
                text=text,
                codes=codes(group[0].get("code")),
                citations=cite(*group),
                status="active",
                date=onsets[0] if onsets else None,
            )
        )
    return sorted(items, key=lambda i: i.date or "", reverse=True)


def problems_absence(record: PatientRecord) -> tuple[str, list[Citation]]:
    """Why Problems is empty: a Condition saying "no known problems" (cited), or no information."""
    found = [(c, s) for c in record.of_type("Condition") if is_active_condition(c) and (s := _problem_statement(c))]
    return stated_absence(found, "recordedDate", "onsetDateTime")


def past_illness(record: PatientRecord) -> tuple[list[SummaryItem], int]:
    """Resolved problems, most recent first (one item per code, the latest resolution)."""
    active_codes = {
        c for cond in record.of_type("Condition") if is_active_condition(cond) for c in codes(cond.get("code"))
    }
    resolved = [
        c
        for c in record.of_type("Condition")
        if not is_active_condition(c)
        and status_code(c.get("verificationStatus")) not in _INACTIVE_VERIFICATION
        and not set(codes(c.get("code"))) & active_codes
        and not _problem_statement(c)
    ]
    items = []
    for group in _by_code(resolved, "code").values():
        latest = max(group, key=lambda c: first_day(c, "abatementDateTime", "onsetDateTime") or "")
        when = first_day(latest, "abatementDateTime", "abatementPeriod")
        name = display(latest.get("code"))
        text = f"{name} (resolved {when})" if when else f"{name} (resolved)"
        items.append(
            SummaryItem(
                text=text, codes=codes(latest.get("code")), citations=cite(latest), status="resolved", date=when
            )
        )
    items.sort(key=lambda i: i.date or "", reverse=True)
    return items[:HISTORY_LIMIT], max(0, len(items) - HISTORY_LIMIT)


# --- medications ---------------------------------------------------------------------------


def medication_concept(record: PatientRecord, req: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict]]:
    """The medication's CodeableConcept and the extra resources it came from (a Medication)."""
    if isinstance(req.get("medicationCodeableConcept"), dict):
        return req["medicationCodeableConcept"], []
    med = record.resolve(req.get("medicationReference"))
    if med is not None:
        return med.get("code"), [med]
    return None, []


def dose_text(req: dict[str, Any]) -> str | None:
    """The dose of the first dosage instruction: its text, else quantity and timing."""
    dosage = (req.get("dosageInstruction") or req.get("dosage") or [None])[0]
    if not isinstance(dosage, dict):
        return None
    if dosage.get("text"):
        return str(dosage["text"])
    parts = []
    dose = next((_dose(d["doseQuantity"]) for d in dosage.get("doseAndRate") or [] if d.get("doseQuantity")), None)
    if dose:
        parts.append(dose)
    rep = ((dosage.get("timing") or {}).get("repeat")) or {}
    if isinstance(rep.get("frequency"), int | float) and isinstance(rep.get("period"), int | float):
        parts.append(
            f"{fmt_number(rep['frequency'])} per {fmt_number(rep['period'])} {rep.get('periodUnit', '')}".strip()
        )
    if dosage.get("asNeededBoolean"):
        parts.append("as needed")
    return ", ".join(parts) or None


def _dose(q: dict[str, Any]) -> str | None:
    if q.get("unit") or q.get("code"):
        return quantity(q)
    return f"{fmt_number(q['value'])} dose" if isinstance(q.get("value"), int | float) else None


def _med_orders(record: PatientRecord) -> list[dict[str, Any]]:
    return record.of_type("MedicationRequest") + record.of_type("MedicationStatement")


def _med_status(res: dict[str, Any]) -> str:
    return str(res.get("status") or "unknown")


def _med_day(res: dict[str, Any]) -> str | None:
    return first_day(res, "authoredOn", "effectiveDateTime", "effectivePeriod", "dateAsserted")


def medication_concepts(record: PatientRecord) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each medication order or statement with its concept, less those stating "no known medications"."""
    pairs = [(req, medication_concept(record, req)[0]) for req in _med_orders(record)]
    return [(req, concept) for req, concept in pairs if not statement_of(concept, NO_KNOWN_MEDICATION)]


def medications(record: PatientRecord) -> list[SummaryItem]:
    """Active medications with dose and start, then recently stopped ones marked as such."""
    today = record_today(record)
    since = (
        (date.fromisoformat(today[:10]) - timedelta(days=RECENTLY_STOPPED_DAYS)).isoformat() if len(today) >= 10 else ""
    )
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    concepts: dict[str, tuple[dict[str, Any] | None, list[dict]]] = {}
    for req in _med_orders(record):
        if req.get("intent") in {"proposal", "plan"} and req.get("status") != "active":
            continue
        concept, extra = medication_concept(record, req)
        if statement_of(concept, NO_KNOWN_MEDICATION):
            continue
        key = (codes(concept) or [display(concept).lower()])[0]
        groups[key].append(req)
        concepts.setdefault(key, (concept, extra))
    active, stopped = [], []
    for key, group in groups.items():
        concept, extra = concepts[key]
        name = display(concept, "unnamed medication")
        live = [r for r in group if _med_status(r) in {"active", "on-hold", "intended"}]
        if live:
            starts = sorted(d for d in (_med_day(r) for r in live) if d)
            latest = max(live, key=lambda r: _med_day(r) or "")
            dose = dose_text(latest)
            text = name + (f" — {dose}" if dose else "") + (f", started {starts[0]}" if starts else "")
            flags = ["on-hold"] if all(_med_status(r) == "on-hold" for r in live) else []
            active.append(
                SummaryItem(
                    text=text,
                    codes=codes(concept),
                    citations=cite(*live, *extra),
                    status="active",
                    date=starts[0] if starts else None,
                    flags=flags,
                )
            )
            continue
        ended = [r for r in group if _med_status(r) in {"stopped", "completed"}]
        last = max(ended, key=lambda r: _med_day(r) or "", default=None)
        if last is not None and (_med_day(last) or "") >= since:
            when = _med_day(last)
            stopped.append(
                SummaryItem(
                    text=f"{name} — {_med_status(last)}, last ordered {when}",
                    codes=codes(concept),
                    citations=cite(last, *extra),
                    status=_med_status(last),
                    date=when,
                    flags=["recently stopped"],
                )
            )
    active.sort(key=lambda i: i.date or "", reverse=True)
    stopped.sort(key=lambda i: i.date or "", reverse=True)
    return active + stopped


def medications_absence(record: PatientRecord) -> tuple[str, list[Citation]]:
    """Why Medications is empty: a MedicationStatement or request saying "no known medications"
    (cited), or no information."""
    found = []
    for req in _med_orders(record):
        said = statement_of(medication_concept(record, req)[0], NO_KNOWN_MEDICATION)
        if said and req.get("status") != "entered-in-error":
            found.append((req, said))
    return stated_absence(found, "dateAsserted", "authoredOn", "effectiveDateTime", "effectivePeriod")


# --- allergies -----------------------------------------------------------------------------


def is_active_allergy(allergy: dict[str, Any]) -> bool:
    if status_code(allergy.get("verificationStatus")) in _INACTIVE_VERIFICATION:
        return False
    return status_code(allergy.get("clinicalStatus")) in {None, "active"}


def no_known_allergy(allergy: dict[str, Any]) -> str | None:
    """The "no known ..." (or "no information") statement an AllergyIntolerance makes, if any."""
    return statement_of(allergy.get("code"), NO_KNOWN_ALLERGY)


def reactions(allergy: dict[str, Any]) -> list[str]:
    return [display(m) for r in allergy.get("reaction") or [] for m in r.get("manifestation") or []]


def allergies(record: PatientRecord) -> list[SummaryItem]:
    """Active allergies (not the resources that state there are none)."""
    real = [a for a in record.of_type("AllergyIntolerance") if is_active_allergy(a) and no_known_allergy(a) is None]
    items = []
    for allergy in real:
        name = display(allergy.get("code"), "unnamed substance")
        details = [c for c in allergy.get("category") or [] if isinstance(c, str)]
        if allergy.get("criticality"):
            details.append(f"criticality {allergy['criticality']}")
        react = sorted(set(reactions(allergy)))
        if react:
            details.append("reaction: " + ", ".join(react))
        text = f"{name} ({'; '.join(details)})" if details else name
        items.append(
            SummaryItem(
                text=text,
                codes=codes(allergy.get("code")),
                citations=cite(allergy),
                status="active",
                date=first_day(allergy, "recordedDate", "onsetDateTime"),
            )
        )
    return items


def allergies_absence(record: PatientRecord) -> tuple[str, list[Citation]]:
    """Why Allergies is empty: an AllergyIntolerance saying "no known allergies" (cited), or no information."""
    active = [a for a in record.of_type("AllergyIntolerance") if is_active_allergy(a)]
    return stated_absence([(a, s) for a in active if (s := no_known_allergy(a))], "recordedDate")


# --- observations --------------------------------------------------------------------------


def _obs_day(obs: dict[str, Any]) -> str:
    return first_day(obs, "effectiveDateTime", "effectivePeriod", "issued") or ""


def _valid_obs(record: PatientRecord, category: str) -> list[dict[str, Any]]:
    return [
        o
        for o in record.of_type("Observation")
        if category in categories(o) and o.get("status") not in {"entered-in-error", "cancelled"}
    ]


def _latest_by_code(observations: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Observations grouped by first code, newest first."""
    groups = _by_code(observations, "code")
    return {k: sorted(v, key=_obs_day, reverse=True) for k, v in groups.items()}


def _interpretation(obs: dict[str, Any]) -> str | None:
    codes_ = {str(c.get("code")) for concept in obs.get("interpretation") or [] for c in codings(concept)}
    if codes_ & {"HH", "LL", "AA", "HU", "LU"}:
        return "critical"
    if codes_ & {"H", ">"}:
        return "high"
    if codes_ & {"L", "<"}:
        return "low"
    if codes_ & {"A"}:
        return "abnormal"
    return None


def _range_flag(value: float, obs: dict[str, Any], lab: Lab | None) -> tuple[str | None, bool]:
    """(high/low or None, whether the range came from the resource)."""
    for rng in obs.get("referenceRange") or []:
        low = (rng.get("low") or {}).get("value")
        high = (rng.get("high") or {}).get("value")
        if isinstance(high, int | float) and value > high:
            return "high", True
        if isinstance(low, int | float) and value < low:
            return "low", True
        if low is not None or high is not None:
            return None, True
    if lab is not None:
        if lab.high is not None and value > lab.high:
            return "high", False
        if lab.low is not None and value < lab.low:
            return "low", False
    return None, False


def _is_critical(value: float, lab: Lab | None) -> bool:
    if lab is None:
        return False
    return (lab.critical_high is not None and value > lab.critical_high) or (
        lab.critical_low is not None and value < lab.critical_low
    )


def _years_before(day_: str, years: int) -> str:
    return f"{int(day_[:4]) - years}{day_[4:10]}" if day_[:4].isdecimal() else ""


def _critical_obs(obs: dict[str, Any], lab: Lab | None) -> bool:
    value = _value(obs)
    return value is not None and (_interpretation(obs) == "critical" or _is_critical(value, lab))


def _value(obs: dict[str, Any]) -> float | None:
    v = (obs.get("valueQuantity") or {}).get("value")
    return float(v) if isinstance(v, int | float) else None


def results(record: PatientRecord) -> tuple[list[SummaryItem], list[SummaryItem]]:
    """Latest value of each key lab (and of any other lab flagged abnormal), with trend and
    abnormal flags; and the needs-attention items: critical or worsening latest results, and
    the most recent critical value of the last two years when the latest is not critical."""
    items, attention = [], []
    order = list(KEY_LABS)
    today = record_today(record)
    for code_key, series in _latest_by_code(_valid_obs(record, "laboratory")).items():
        latest = series[0]
        loinc = code_key.split("|", 1)[1] if code_key.startswith("http://loinc.org|") else None
        lab = KEY_LABS.get(loinc or "")
        value = _value(latest)
        if value is None:
            continue
        flag = _interpretation(latest)
        range_flag, from_resource = _range_flag(value, latest, lab)
        flag = flag or range_flag
        critical = flag == "critical" or _is_critical(value, lab)
        if lab is None and flag is None:
            continue
        name = display(latest.get("code"))
        text = f"{name} {quantity(latest['valueQuantity'])} on {_obs_day(latest)}"
        flags = [f for f in [flag, "critical" if critical and flag != "critical" else None] if f]
        if flag in {"high", "low"} and not from_resource and _interpretation(latest) is None:
            flags = [f"{flag} (usual adult range)", *flags[1:]]
        cited = [latest]
        previous = next((o for o in series[1:] if _value(o) is not None and _obs_day(o) < _obs_day(latest)), None)
        worsening = False
        if previous is not None:
            prev = _value(previous)
            assert prev is not None
            trend = "rising" if value > prev * 1.05 else "falling" if value < prev * 0.95 else "stable"
            text += f"; {trend} from {fmt_number(prev)} on {_obs_day(previous)}"
            cited.append(previous)
            worsening = (flag == "high" and trend == "rising") or (flag == "low" and trend == "falling")
            if worsening:
                flags.append("worsening")
        if flags:
            text += " — " + ", ".join(flags)
        item = SummaryItem(
            text=text, codes=codes(latest.get("code")), citations=cite(*cited), date=_obs_day(latest), flags=flags
        )
        items.append((order.index(loinc) if loinc in order else len(order), item))
        earlier = next(
            (o for o in series[1:] if _critical_obs(o, lab) and _obs_day(o) >= _years_before(today, 2)), None
        )
        if earlier is not None and not critical:
            attention.append(
                SummaryItem(
                    text=f"Critical result: {name} {quantity(earlier['valueQuantity'])} on {_obs_day(earlier)}",
                    codes=codes(earlier.get("code")),
                    citations=cite(earlier),
                    date=_obs_day(earlier),
                    flags=["critical"],
                )
            )
        if critical or worsening:
            attention.append(
                item.model_copy(update={"text": ("Critical result: " if critical else "Worsening result: ") + text})
            )
    return [i for _, i in sorted(items, key=lambda p: p[0])], attention


def _component(obs: dict[str, Any], loinc: str) -> float | None:
    for comp in obs.get("component") or []:
        if has_code(comp.get("code"), "loinc.org", loinc):
            v = (comp.get("valueQuantity") or {}).get("value")
            return float(v) if isinstance(v, int | float) else None
    return None


def vital_signs(record: PatientRecord) -> list[SummaryItem]:
    """Latest value of each vital sign (blood pressure as systolic/diastolic)."""
    items = []
    for series in _latest_by_code(_valid_obs(record, "vital-signs")).values():
        latest = series[0]
        name = display(latest.get("code"))
        systolic, diastolic = _component(latest, "8480-6"), _component(latest, "8462-4")
        if systolic is not None and diastolic is not None:
            unit = next(
                (c["valueQuantity"].get("unit", "") for c in latest.get("component") or [] if c.get("valueQuantity")),
                "",
            )
            value_text = f"{fmt_number(systolic)}/{fmt_number(diastolic)} {unit}".strip()
        else:
            value_text = quantity(latest.get("valueQuantity")) or ""
        if not value_text:
            continue
        items.append(
            SummaryItem(
                text=f"{name} {value_text} on {_obs_day(latest)}",
                codes=codes(latest.get("code")),
                citations=cite(latest),
                date=_obs_day(latest),
            )
        )
    return items


def social_history(record: PatientRecord) -> list[SummaryItem]:
    """Latest social-history observations, smoking status first."""
    items = []
    observed = _valid_obs(record, "social-history") + [
        o
        for o in record.of_type("Observation")
        if has_code(o.get("code"), "loinc.org", SMOKING_STATUS) and "social-history" not in categories(o)
    ]
    for series in _latest_by_code(observed).values():
        latest = series[0]
        value = latest.get("valueCodeableConcept")
        value_text = (
            display(value)
            if isinstance(value, dict)
            else quantity(latest.get("valueQuantity"))
            or (str(latest["valueString"]) if isinstance(latest.get("valueString"), str) else None)
        )
        if not value_text:
            continue
        smoking = has_code(latest.get("code"), "loinc.org", SMOKING_STATUS)
        items.append(
            SummaryItem(
                text=f"{display(latest.get('code'))}: {value_text} (recorded {_obs_day(latest)})",
                codes=codes(latest.get("code")) + codes(value),
                citations=cite(latest),
                date=_obs_day(latest),
                flags=["smoking"] if smoking else [],
            )
        )
    return sorted(items, key=lambda i: "smoking" not in i.flags)


# --- other sections ------------------------------------------------------------------------


def _latest_per_code(resources: list[dict[str, Any]], code: str, *when: str) -> list[SummaryItem]:
    """One item per ``code`` with its latest date (the first of the ``when`` fields present), most recent first."""
    items = []
    for group in _by_code(resources, code).values():
        latest = max(group, key=lambda r: first_day(r, *when) or "")
        day = first_day(latest, *when)
        name = display(latest.get(code))
        items.append(
            SummaryItem(
                text=f"{name} (latest {day})" if day else name,
                codes=codes(latest.get(code)),
                citations=cite(latest),
                date=day,
            )
        )
    return sorted(items, key=lambda i: i.date or "", reverse=True)


def immunizations(record: PatientRecord) -> list[SummaryItem]:
    """One item per vaccine with its latest date."""
    given = [i for i in record.of_type("Immunization") if i.get("status", "completed") == "completed"]
    return _latest_per_code(given, "vaccineCode", "occurrenceDateTime")


def procedures(record: PatientRecord) -> tuple[list[SummaryItem], int]:
    """Procedures done, one item per code with its latest date, most recent first."""
    done = [p for p in record.of_type("Procedure") if p.get("status", "completed") in {"completed", "in-progress"}]
    items = _latest_per_code(done, "code", "performedDateTime", "performedPeriod")
    return items[:HISTORY_LIMIT], max(0, len(items) - HISTORY_LIMIT)


def devices(record: PatientRecord) -> list[SummaryItem]:
    """The patient's devices (Device and DeviceUseStatement)."""
    items = []
    for dev in record.of_type("Device"):
        if dev.get("status") in {"inactive", "entered-in-error"}:
            continue
        name = display(dev.get("type"), "") or next(
            (str(n.get("name")) for n in dev.get("deviceName") or [] if n.get("name")), "unnamed device"
        )
        when = first_day(dev, "manufactureDate")
        items.append(SummaryItem(text=name, codes=codes(dev.get("type")), citations=cite(dev), date=when))
    for use in record.of_type("DeviceUseStatement"):
        if use.get("status") not in {"active", "intended", None}:
            continue
        used = record.resolve(use.get("device"))
        concept = (used or {}).get("type")
        extra = [used] if used else []
        items.append(
            SummaryItem(text=display(concept, "unnamed device"), codes=codes(concept), citations=cite(use, *extra))
        )
    return items


def plan_of_care(record: PatientRecord) -> list[SummaryItem]:
    """Active care plans (with their activities), goals and service requests."""
    items = []
    for plan in record.of_type("CarePlan"):
        if plan.get("status") != "active":
            continue
        name = next(
            (display(c) for c in plan.get("category") or [] if display(c, "") and display(c) != "assess-plan"),
            plan.get("title") or "Care plan",
        )
        acts = [display((a.get("detail") or {}).get("code"), "") for a in plan.get("activity") or []]
        acts = [a for a in acts if a]
        when = first_day(plan, "period")
        text = name + (f": {', '.join(acts)}" if acts else "") + (f" (since {when})" if when else "")
        items.append(
            SummaryItem(
                text=text,
                codes=[c for cat in plan.get("category") or [] for c in codes(cat)],
                citations=cite(plan),
                status="active",
                date=when,
            )
        )
    for goal in record.of_type("Goal"):
        if goal.get("lifecycleStatus") not in {"active", "accepted", "planned", "proposed"}:
            continue
        items.append(
            SummaryItem(
                text=f"Goal: {display(goal.get('description'))}",
                codes=codes(goal.get("description")),
                citations=cite(goal),
                status=goal.get("lifecycleStatus"),
            )
        )
    for req in record.of_type("ServiceRequest"):
        if req.get("status") not in {"active", "draft", "on-hold"}:
            continue
        when = first_day(req, "authoredOn", "occurrenceDateTime")
        items.append(
            SummaryItem(
                text=f"Ordered: {display(req.get('code'))}" + (f" ({when})" if when else ""),
                codes=codes(req.get("code")),
                citations=cite(req),
                status=req.get("status"),
                date=when,
            )
        )
    return items


def encounters(record: PatientRecord) -> list[SummaryItem]:
    """The most recent encounters, newest first."""
    visits = sorted(record.of_type("Encounter"), key=lambda e: first_day(e, "period") or "", reverse=True)
    items = []
    for enc in visits[:RECENT_ENCOUNTERS]:
        when = first_day(enc, "period")
        kind = display((enc.get("type") or [None])[0], "") or str((enc.get("class") or {}).get("code") or "Encounter")
        reason = next((display(r) for r in enc.get("reasonCode") or [] if display(r, "")), None)
        text = f"{when}: {kind}" + (f" for {reason}" if reason else "") if when else kind
        items.append(
            SummaryItem(
                text=text, codes=[c for t in enc.get("type") or [] for c in codes(t)], citations=cite(enc), date=when
            )
        )
    return items
