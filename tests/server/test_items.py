"""AI outputs in the shapes the other capabilities write become review items."""

from __future__ import annotations

from carelens.server.items import finding_items, image_items, pgx_items, split_drugs

PREDICTION = {  # ImagePrediction.to_dict() of carelens.imaging.predict
    "source": "cxr-001.dcm",
    "input_hash": "ab" * 32,
    "finding": "opacity",
    "probability": 0.61,
    "probability_of": "opacity",
    "conformal_set": ["no opacity", "opacity"],
    "uncertain_refer": True,
    "status": "uncertain: refer",
    "heatmap": "p1/cxr-001.heatmap.png",
    "model": {"id": "f" * 64, "version": "1.0", "name": "demo-cxr"},
    "evidence": {
        "citations": [],
        "confidence": 0.61,
        "provenance": {"model_id": "f" * 64, "model_version": "1.0", "input_hash": "ab" * 32},
    },
}


def test_image_prediction_abstains_with_refer_and_names_its_model() -> None:
    confident = {**PREDICTION, "uncertain_refer": False, "status": "opacity", "conformal_set": ["opacity"]}
    refer, sure = image_items([PREDICTION, confident])
    assert refer.text == "uncertain: refer (p = 0.61)" and refer.needs_attention
    assert refer.detail["prediction_set"] == ["no opacity", "opacity"] and refer.detail["has_heatmap"]
    assert (refer.model_id, refer.model_version, refer.model_label) == ("f" * 64, "1.0", "demo-cxr")
    assert sure.text == "opacity (p = 0.61)" and not sure.needs_attention
    assert refer.key != sure.key


def test_pgx_items_only_for_called_genes_with_their_drugs() -> None:
    report = {
        "sample": "S1",
        "genes": [
            {"gene": "CYP2C19", "diplotypes": ["*1/*2"], "phenotype": "Intermediate Metabolizer"},
            {"gene": "DPYD", "diplotypes": [], "phenotype": None, "reason": "no variant positions in the VCF"},
        ],
        "drugs": [{"drug": "clopidogrel", "genes": {"CYP2C19": "Intermediate Metabolizer"}, "recommendation": "alt"}],
        "provenance": {"model_id": "carelens.genomics.pgx", "model_version": "2025-11-05"},
    }
    (item,) = pgx_items(report)
    assert item.text == "CYP2C19: *1/*2 (Intermediate Metabolizer)"
    assert item.model_id == "carelens.genomics.pgx" and item.detail["drugs"][0]["drug"] == "clopidogrel"


def test_findings_flag_only_reportable_variants() -> None:
    base = {
        "gene": "BRCA2",
        "chrom": "chr13",
        "pos": 32340300,
        "ref": "A",
        "alt": "AT",
        "significance": "Pathogenic",
        "zygosity": "heterozygous",
    }
    reportable, carrier = finding_items([{**base, "reportable": True}, {**base, "gene": "MUTYH", "reportable": False}])
    assert reportable.text == "BRCA2 chr13:32340300 A>AT Pathogenic heterozygous" and reportable.needs_attention
    assert not carrier.needs_attention


def test_split_drugs_puts_the_patients_own_medications_first() -> None:
    summary = {
        "sections": [
            {"code": "10160-0", "items": [{"text": "capecitabine 500 mg oral tablet, started 2020-01-07"}]},
            {"code": "11450-4", "items": [{"text": "history of warfarin allergy"}]},  # not a medication
        ]
    }
    drugs = [{"drug": "warfarin"}, {"drug": "capecitabine", "genes": {"DPYD": "1.0"}}, {"drug": "cape"}]
    current, other = split_drugs(drugs, summary)
    assert [d["drug"] for d in current] == ["capecitabine"]
    assert [d["drug"] for d in other] == ["warfarin", "cape"]  # whole words only
    assert split_drugs(drugs, None) == ([], drugs)
