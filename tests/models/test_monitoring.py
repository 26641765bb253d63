"""Validity and fairness monitoring from clinician feedback (HTI-1 paragraph 8)."""

from __future__ import annotations

from datetime import date

from carelens.models import Registry
from carelens.models.monitoring import age_group, monitoring_attributes, summarise_feedback, wilson


def _decisions() -> list[dict]:
    rows = []
    for p in range(30):  # 30 patients: women overridden 1 in 3, men never; everyone 40-64
        action = "reject" if p % 2 == 0 and p % 3 == 0 else "accept"
        rows.append({"action": action, "patient": f"p{p}", "sex": "female" if p % 2 == 0 else "male",
                     "age_group": "40-64", "at": f"2026-12-{1 + p % 5:02d}"})  # fmt: skip
    rows.append({"action": "edit", "patient": "p99", "sex": "other", "age_group": "65+", "at": "2026-12-06"})
    rows.append({"action": "viewed", "patient": "p98", "sex": "male", "age_group": "40-64", "at": "2026-12-06"})
    return rows


def test_override_rates_overall_and_per_subgroup_with_small_cells_suppressed() -> None:
    summary = summarise_feedback(_decisions(), "st-marys")
    assert (summary["decisions"], summary["overridden"], summary["accepted"]) == (31, 6, 25)  # 'viewed' is no decision
    assert summary["override_ci"][0] < 6 / 31 < summary["override_ci"][1]
    assert summary["first"] == "2026-12-01" and summary["last"] == "2026-12-06"
    cells = {(r["group"], r["value"]): r for r in summary["subgroups"]}
    assert cells[("sex", "female")]["override_rate"] == round(5 / 15, 4)
    assert cells[("sex", "male")]["override_rate"] == 0.0
    assert cells[("sex", "other")] == {"group": "sex", "value": "other", "suppressed": True}
    assert cells[("age_group", "65+")]["suppressed"] and cells[("age_group", "40-64")]["decisions"] == 30
    text = monitoring_attributes([summary])
    assert "st-marys: 6 of 31 outputs overridden (19.4%" in text["validity_monitoring"]
    assert "sex=female: 33.3% overridden (n=15)" in text["fairness_monitoring"]
    assert monitoring_attributes([]) == {}


def test_age_groups_and_wilson_interval() -> None:
    today = date(2026, 12, 6)
    assert age_group("2010-12-07", today) == "0-17" and age_group("2008-12-06", today) == "18-39"
    assert age_group("1960", today) == "65+" and age_group(None) == "unknown" and age_group("n/a") == "unknown"
    low, high = wilson(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    assert wilson(0, 0) == (0.0, 1.0)


def test_monitoring_records_fill_the_card_beside_the_developers_process(tmp_path) -> None:
    registry = Registry(tmp_path)
    card = {"validity_monitoring": "Reviewed monthly by the imaging lead."}
    entry = registry.register_weights(b"weights", {"name": "m", "card": card})
    assert registry.export(entry.id)["hti1"]["validity_monitoring"] == card["validity_monitoring"]
    assert "fairness_monitoring" in registry.export(entry.id)["missing"]
    registry.append_record(entry.id, "monitoring", {"sites": [summarise_feedback(_decisions(), "st-marys")]})
    hti1 = registry.export(entry.id)["hti1"]
    assert hti1["validity_monitoring"].startswith("Reviewed monthly by the imaging lead. Measured from clinician")
    assert "st-marys: 6 of 31" in hti1["validity_monitoring"] and "sex=male: 0.0%" in hti1["fairness_monitoring"]


def test_a_failed_site_validation_and_the_training_sites_reach_the_card(tmp_path) -> None:
    registry = Registry(tmp_path)
    meta = {
        "name": "federated",
        "card": {"limitations": ["Trained at 28 px."]},
        "lineage": {
            "sites": [{"site": "pediatric", "counts": {"train": 3882}}, {"site": "adult", "counts": {"train": 434}}]
        },
    }
    entry = registry.register_weights(b"federated weights", meta)
    sites = [{"site": "adult", "passed": False, "failed": ["AUC 0.435 < 0.8"]}, {"site": "pediatric", "passed": True}]
    registry.append_record(entry.id, "validation", {"sites": sites})
    hti1 = registry.export(entry.id)["hti1"]
    assert hti1["training_data_relevance"].startswith("Trained on pediatric: train 3882 images; adult: train 434")
    assert hti1["known_risks_and_limitations"][0] == "Trained at 28 px."  # the developer's list, then the evidence
    assert hti1["known_risks_and_limitations"][1].startswith("Did not pass its validation at adult (AUC 0.435 < 0.8)")
