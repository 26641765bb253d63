"""DPWG recommendations where CPIC has none: the shipped CC BY-SA file, its use in JSON / HTML / FHIR and the
workspace's PGx items, and 'genome import-dpwg' on a hand-written PharmGKB-layout fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core.errors import InputError
from carelens.genomics.definitions import load_definitions
from carelens.genomics.dpwg import DPWG_FILE, build_dpwg, load_dpwg, match_dpwg
from carelens.genomics.fhir import pgx_fhir, validate_bundle
from carelens.genomics.pgx import pgx_report
from carelens.genomics.render import render_html
from carelens.server.items import pgx_items
from tests.genomics.conftest import write_vcf

FIXTURE = Path(__file__).parent / "data" / "dpwg_fixture"
VKORC1_AA = "haplotype/VKORC1/-1639A-1639A.vcf"
runner = CliRunner()


def test_shipped_file_keeps_its_licence_and_names_every_source() -> None:
    meta, aliases, guidelines = load_dpwg()
    assert "CC BY-SA 4.0" in meta["licence"] and (DPWG_FILE.parent / "DPWG_LICENSE.md").is_file()
    assert "VKORC1" in aliases
    cpic = {(r.drug, gene) for r in load_definitions().recommendations for gene in r.lookup}
    assert guidelines and not {(g.drug, g.gene) for g in guidelines} & cpic  # only where CPIC has no guideline
    for g in guidelines:
        assert g.id.startswith("PA") and g.version and g.url.endswith(g.id) and g.groups


def test_vkorc1_aa_gets_dpwg_coumarin_advice_in_every_format(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / VKORC1_AA)
    dpwg = {d.drug: d for d in report.drugs if d.source == "DPWG"}
    assert set(dpwg) == {"acenocoumarol", "phenprocoumon"}
    aceno = dpwg["acenocoumarol"]
    assert (aceno.guideline_id, aceno.version, aceno.rx_change) == ("PA166104938", "31", "Yes")
    assert "50% of the standard initial dose" in aceno.recommendation
    assert "-1639 AA" in aceno.genes["VKORC1"]
    assert all(d.source == "CPIC" for d in report.drugs if d.drug == "warfarin")
    page = render_html(report)
    assert "DPWG v31" in page and "PA166104938" in page
    bundle = pgx_fhir(report)
    validate_bundle(bundle)
    notes = [n["text"] for e in bundle["entry"] for n in e["resource"].get("note", [])]
    assert any(t.startswith("DPWG:") and "PA166104938" in t and "version 31" in t for t in notes)
    (item,) = [i for i in pgx_items(json.loads(report.model_dump_json())) if i.text.startswith("VKORC1")]
    assert {d["drug"] for d in item.detail["drugs"] if d["source"] == "DPWG"} == {"acenocoumarol", "phenprocoumon"}


def test_ugt1a1_poor_metabolizer_gets_the_irinotecan_dose(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/UGT1A1/s28s37.vcf")
    (ugt,) = [g for g in report.genes if g.gene == "UGT1A1"]
    assert ugt.diplotypes == ["*28/*37"]
    (irino,) = [d for d in report.drugs if d.drug == "irinotecan"]
    assert irino.source == "DPWG" and "70% of the standard dose" in irino.recommendation
    assert "Poor metabolizer (other than *28/*28)" in irino.genes["UGT1A1"]


def test_allele_unknown_to_dpwg_gives_no_dpwg_advice() -> None:
    matches, _ = match_dpwg({"UGT1A1": "*1/*80"}, set())  # *80 is not in DPWG's UGT1A1 allele list
    assert matches == []


def test_import_dpwg_from_a_pharmgkb_layout_folder(tmp_path: Path) -> None:
    out = tmp_path / "dpwg.json"
    result = runner.invoke(app, ["genome", "import-dpwg", "--from", str(FIXTURE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert (meta["guidelines"], meta["skipped"]) == (1, 1) and "CC BY-SA" in meta["licence"]
    hom = "rs9923231 variant (T)/rs9923231 variant (T)"
    (m,) = match_dpwg({"VKORC1": hom}, set(), out)[0]
    assert m.group.recommendation == "Hand-written fixture: use half the dose." and m.guideline.version == "7"
    het = "rs9923231 reference (C)/rs9923231 variant (T)"  # the fixture writes this pair unsorted
    (m,) = match_dpwg({"VKORC1": het}, set(), out)[0]
    assert m.group.name == "-1639 AG"
    assert match_dpwg({"VKORC1": hom}, {("testdrug", "VKORC1")}, out)[0] == []  # CPIC covers it: no DPWG advice


def test_import_dpwg_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_guideline.json"
    bad.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(InputError, match="not a PharmGKB guideline annotation") as err:
        build_dpwg(bad)
    assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["genome", "import-dpwg", "--from", str(tmp_path / "empty"), "--out", "x.json"])
    assert result.exit_code != 0


def test_abcg2_allopurinol_dpwg_beside_cpic_hla_b(tmp_path: Path) -> None:
    """CPIC's allopurinol guideline keys on HLA-B only; DPWG's ABCG2 advice is added beside it."""
    rows = ["chr4\t88131171\trs2231142\tG\tT\t.\tPASS\t.\tGT\t0/1"]
    report = pgx_report(write_vcf(tmp_path / "abcg2.vcf", rows, chrom="chr4", length=190214555))
    (allo,) = [d for d in report.drugs if d.drug == "allopurinol" and d.source == "DPWG"]
    assert "1.25 times the standard dose" in allo.recommendation and allo.guideline_id == "PA166264961"
    assert "Decreased function GT" in allo.genes["ABCG2"]


def test_cyp2c9_siponimod_groups_keep_star_specific_rows(test_vcfs: Path) -> None:
    """DPWG's siponimod groups name *1/*3 and *2/*3 apart from the generic decreased-function pairs."""
    report = pgx_report(test_vcfs / "haplotype/cyp2c9/s2s3.vcf")
    (sipo,) = [d for d in report.drugs if d.drug == "siponimod"]
    assert sipo.genes["CYP2C9"] == "*2/*3 (*2/*3)" and "50% of the normal maintenance dose" in sipo.recommendation
    (m,) = match_dpwg({"CYP2C9": "*3/*3"}, set())[0]
    assert (m.group.name, m.group.recommendation) == ("*3/*3", "Avoid siponimod.")
