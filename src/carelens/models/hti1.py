"""The 31 source attributes ONC HTI-1 requires for a predictive decision support intervention.

45 CFR 170.315(b)(11)(iv)(B), paragraphs (1) to (9). Each attribute has a short key (used in
model cards and in the ``hti1`` export), the paragraph it comes from and the regulation's wording.
A value is taken from the model card when the developer wrote it, or from the registry entry
when the entry holds the fact (measured performance, training lineage); anything else is
reported as missing, never filled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attribute:
    """One HTI-1 source attribute: key, CFR paragraph, section and the regulation's wording."""

    key: str
    cfr: str
    section: str
    title: str


def _attrs(section: str, para: str, items: list[tuple[str, str]]) -> list[Attribute]:
    numerals = ["i", "ii", "iii", "iv", "v"]
    return [
        Attribute(key, f"170.315(b)(11)(iv)(B)({para})({numerals[i]})", section, title)
        for i, (key, title) in enumerate(items)
    ]


_DEMOGRAPHIC_VARIABLES = (
    "race, ethnicity, language, sexual orientation, gender identity, sex, date of birth, social "
    "determinants of health and health status assessment: 170.315(b)(11)(iv)(A)(5)-(13)"
)

HTI1_ATTRIBUTES: tuple[Attribute, ...] = tuple(
    _attrs(
        "Details and output of the intervention",
        "1",
        [
            ("developer", "Name and contact information for the intervention developer"),
            ("funding_source", "Funding source of the technical implementation for the intervention(s) development"),
            ("output_value", "Description of value that the intervention produces as an output"),
            (
                "output_type",
                "Whether the intervention output is a prediction, classification, recommendation, evaluation, "
                "analysis, or other type of output",
            ),
        ],
    )
    + _attrs(
        "Purpose of the intervention",
        "2",
        [
            ("intended_use", "Intended use of the intervention"),
            ("intended_patient_population", "Intended patient population(s) for the intervention's use"),
            ("intended_users", "Intended user(s)"),
            (
                "intended_decision_role",
                "Intended decision-making role for which the intervention was designed to be used/for "
                "(e.g., informs, augments, replaces clinical management)",
            ),
        ],
    )
    + _attrs(
        "Cautioned out-of-scope use of the intervention",
        "3",
        [
            (
                "out_of_scope_use",
                "Description of tasks, situations, or populations where a user is cautioned against applying "
                "the intervention",
            ),
            (
                "known_risks_and_limitations",
                "Known risks, inappropriate settings, inappropriate uses, or known limitations",
            ),
        ],
    )
    + _attrs(
        "Intervention development details and input features",
        "4",
        [
            ("inclusion_exclusion_criteria", "Exclusion and inclusion criteria that influenced the training data set"),
            ("demographic_input_features", f"Use of variables ({_DEMOGRAPHIC_VARIABLES}) as input features"),
            (
                "training_demographic_representativeness",
                f"Description of demographic representativeness according to variables ({_DEMOGRAPHIC_VARIABLES}) "
                "including, at a minimum, those used as input features in the intervention",
            ),
            ("training_data_relevance", "Description of relevance of training data to intended deployed setting"),
        ],
    )
    + _attrs(
        "Process used to ensure fairness in development of the intervention",
        "5",
        [
            (
                "fairness_approach",
                "Description of the approach the intervention developer has taken to ensure that the intervention's "
                "output is fair",
            ),
            ("bias_mitigation", "Description of approaches to manage, reduce, or eliminate bias"),
        ],
    )
    + _attrs(
        "External validation process",
        "6",
        [
            (
                "external_validation_data_source",
                "Description of the data source, clinical setting, or environment where an intervention's validity "
                "and fairness has been assessed, other than the source of training and testing data",
            ),
            ("external_validation_party", "Party that conducted the external testing"),
            (
                "external_demographic_representativeness",
                "Description of demographic representativeness of external data according to variables "
                f"({_DEMOGRAPHIC_VARIABLES}) including, at a minimum, those used as input features in the intervention",
            ),
            ("external_validation_process", "Description of external validation process"),
        ],
    )
    + _attrs(
        "Quantitative measures of performance",
        "7",
        [
            (
                "internal_validity",
                "Validity of intervention in test data derived from the same source as the initial training data",
            ),
            (
                "internal_fairness",
                "Fairness of intervention in test data derived from the same source as the initial training data",
            ),
            (
                "external_validity",
                "Validity of intervention in data external to or from a different source than the initial "
                "training data",
            ),
            (
                "external_fairness",
                "Fairness of intervention in data external to or from a different source than the initial "
                "training data",
            ),
            (
                "outcome_evaluation_references",
                "References to evaluation of use of the intervention on outcomes, including bibliographic citations "
                "or hyperlinks to evaluations of how well the intervention reduced morbidity, mortality, length of "
                "stay, or other outcomes",
            ),
        ],
    )
    + _attrs(
        "Ongoing maintenance of intervention implementation and use",
        "8",
        [
            (
                "validity_monitoring",
                "Description of process and frequency by which the intervention's validity is monitored over time",
            ),
            ("local_validity", "Validity of intervention in local data"),
            (
                "fairness_monitoring",
                "Description of the process and frequency by which the intervention's fairness is monitored over time",
            ),
            ("local_fairness", "Fairness of intervention in local data"),
        ],
    )
    + _attrs(
        "Update and continued validation or fairness assessment schedule",
        "9",
        [
            ("update_process", "Description of process and frequency by which the intervention is updated"),
            (
                "performance_correction",
                "Description of frequency by which the intervention's performance is corrected when risks related "
                "to validity and fairness are identified",
            ),
        ],
    )
)

HTI1_KEYS: tuple[str, ...] = tuple(a.key for a in HTI1_ATTRIBUTES)
assert len(HTI1_KEYS) == 31 and len(set(HTI1_KEYS)) == 31


# Model-card keys other carelens packages write, and the attribute each one answers.
CARD_ALIASES = {
    "limitations": "known_risks_and_limitations",
    "performance": "internal_validity",
    "developer_contact": "developer",
    "funding": "funding_source",
    "intended_population": "intended_patient_population",
    "users": "intended_users",
}


# Attributes where the developer writes the process or the known limits and the registry holds what was measured
# (monitoring figures, a failed validation): both are shown.
MEASURED_BESIDE_CARD = ("validity_monitoring", "fairness_monitoring", "known_risks_and_limitations")


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def hti1_attributes(card: dict[str, Any], derived: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The 31 attribute values and the keys still missing.

    ``card`` is what the developer wrote (keys as in ``HTI1_KEYS``, or nested under ``"hti1"``);
    ``derived`` holds facts the registry entry itself records (measured validity, lineage). The
    card wins where both have a value; unknown card keys are ignored here (they stay in the card).
    """
    written = {CARD_ALIASES[k]: v for k, v in card.items() if k in CARD_ALIASES}
    written.update(card.get("hti1") or {})
    written.update({k: v for k, v in card.items() if k in HTI1_KEYS})
    values: dict[str, Any] = {}
    missing: list[str] = []
    for key in HTI1_KEYS:
        value = written.get(key) if _present(written.get(key)) else derived.get(key)
        if key in MEASURED_BESIDE_CARD and _present(written.get(key)) and _present(derived.get(key)):
            mine = written[key]
            value = [*mine, derived[key]] if isinstance(mine, list) else f"{mine} {derived[key]}"
        if _present(value):
            values[key] = value
        else:
            values[key] = None
            missing.append(key)
    return values, missing
