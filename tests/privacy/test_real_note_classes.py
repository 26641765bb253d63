"""One regression test per failure class seen on real ICU nursing notes (sentences written for
these tests, in the style of such notes, not copied from any corpus)."""

from __future__ import annotations

import pytest

from tests.privacy.flagging import masked


@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("Pt seen by Dr. Okonkwo this am, aware of K 3.1, repleted.", ["Okonkwo"]),
        ("D/W DR. HALVORSEN RE: LASIX DRIP, WILL F/U IN AM.", ["HALVORSEN"]),
        ("Wife Dolores in to visit, updated on plan of care.", ["Dolores"]),
        ("DAUGHTER MARGUERITE CALLED FOR UPDATE, INFORMED OF TRANSFER.", ["MARGUERITE"]),
        ("Transferred from Bayview Hospital for further management of GI bleed.", ["Bayview"]),
        ("PT LIVES ALONE IN FRAMINGHAM, SON NEARBY.", ["FRAMINGHAM"]),
        ("Admitted 7/22 with hypotension; echo on 7/23 showed EF 25%.", ["7/22", "7/23"]),
        ("Please page covering MD at x4-5678 with any questions.", ["x4-5678"]),
        ("Pt is a 93 yo woman admitted with urosepsis.", ["93"]),
        (
            "Social: husband Reginald Fairweather is HCP, phone 617-555-0143.",
            ["Reginald", "Fairweather", "617-555-0143"],
        ),
        ("Mr. Ngozika resting comfortably, family at bedside.", ["Ngozika"]),
        ("Spoke with Dorotea (wife) re: code status, she agrees with DNR.", ["Dorotea"]),
        ("NSG (R. O'SHAUGHNESSY AND K. WU) COUNTED VALUABLES WITH PT.", ["O'SHAUGHNESSY"]),
        ("Pt discharged to Glen Burnie rehab at 1400.", ["Glen Burnie"]),
        ("Family: Daughter, Al, updated by team at bedside.", ["Al"]),
        (  # a place named again without its cue
            "Pt transferred from Kelmscott Manor this am; Kelmscott staff report baseline confusion.",
            ["Kelmscott Manor", "Kelmscott staff"],
        ),
    ],
)
def test_phi_of_real_note_style_is_found(text: str, phi: list[str]) -> None:
    flagged = masked(text)
    for value in phi:
        start = text.index(value)
        assert "#" in flagged[start : start + len(value)], (value, flagged)


@pytest.mark.parametrize(
    "text",
    [
        "GU: Foley draining clear yellow urine, 40-60cc/hr. Swan in place, CO 4.2, CI 2.1.",
        "NEURO: A&OX3, MAE, PERRLA. Hx Parkinson's disease, on sinemet.",
        "CV: SR 80s, no ectopy. Cooley's anemia noted in PMH. Levophed weaned to 0.05 mcg/kg/min.",
        "RESP: LS coarse bilat, sx for thick tan sputum. PEEP 5, FiO2 40%, ABG 7.38/42/96.",
        "GI: abd soft, +BS, TF at goal 60cc/hr via NGT. Protonix IV. Flagyl for C diff.",
        "PLAN: cont vanco/zosyn, f/u cultures, monitor lytes, wean vent as tolerated.",
        "ALINE PLACED R FEM, QUINTON IN L IJ. SENNA AND COLACE QHS.",
        "WEANED PSV TO 10/5/40%, TV 450S. ABG 7.41-38-92 ON THESE SETTINGS.",
    ],
)
def test_clinical_words_eponyms_devices_and_drugs_are_kept(text: str) -> None:
    assert "#" not in masked(text), masked(text)
