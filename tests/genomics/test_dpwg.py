"""DPWG recommendations beside CPIC's, as PharmCAT reports them: the shipped CC BY-SA file (rebuilt from the PharmCAT
guideline extracts in ``data/dpwg_source``), matching by function pair, activity score, HLA presence and SLCO1B1's
c.521 genotype, their use in JSON / HTML / FHIR and the workspace's PGx items, and 'genome import-dpwg'.

Each expected recommendation is the group the guideline's own source file names (its id and text are read from the
source extract), so the tests check the matching, not prose copied into the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core.errors import InputError
from carelens.genomics.dpwg import DPWG_FILE, activity_ranges, build_dpwg, load_dpwg, match_dpwg
from carelens.genomics.fhir import pgx_fhir, validate_bundle
from carelens.genomics.pgx import PgxReport, pgx_report
from carelens.genomics.render import render_html
from carelens.server.items import pgx_items
from tests.genomics.conftest import write_vcf

FIXTURE = Path(__file__).parent / "data" / "dpwg_fixture"
MULTIGENE = Path(__file__).parent / "data" / "dpwg_multigene"
SOURCE = DPWG_FILE.parent / "dpwg_source"
VKORC1_AA = "haplotype/VKORC1/-1639A-1639A.vcf"
runner = CliRunner()


def source_group(drug: str, gene: str, name: str) -> dict[str, str]:
    """The annotation group called ``name`` in the guideline's source extract: its id and plain-text advice."""
    path = SOURCE / f"Annotation_of_DPWG_Guideline_for_{drug}_and_{gene.replace('-', '_')}.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    (group,) = [g for g in doc["annotationGroups"] if g["name"] == name]
    entry = build_dpwg(path)
    (compact,) = [g for g in entry["guidelines"][0]["groups"] if g["id"] == group["id"]]
    return {"id": group["id"], "recommendation": compact["recommendation"], "version": str(doc["guideline"]["version"])}


def dpwg(report: PgxReport, drug: str) -> dict[str, object]:
    (rec,) = [d for d in report.drugs if d.drug == drug and d.source == "DPWG"]
    return rec.model_dump()


def assert_group(report: PgxReport, drug: str, gene: str, name: str) -> None:
    expected = source_group(drug, gene, name)
    rec = dpwg(report, drug)
    assert (rec["group_id"], rec["recommendation"], rec["version"]) == (
        expected["id"],
        expected["recommendation"],
        expected["version"],
    )
    assert rec["guideline_id"] and str(rec["guideline_id"]).startswith("PA") and name in str(rec["genes"][gene])


def test_shipped_file_is_rebuilt_from_the_source_extracts_and_keeps_its_licence() -> None:
    meta, aliases, guidelines = load_dpwg()
    assert "CC BY-SA 4.0" in meta["licence"] and (DPWG_FILE.parent / "DPWG_LICENSE.md").is_file()
    assert "VKORC1" in aliases and "DPYD" in aliases
    shipped = json.loads(DPWG_FILE.read_text(encoding="utf-8"))
    rebuilt = build_dpwg(SOURCE)
    assert rebuilt["guidelines"] == shipped["guidelines"] and rebuilt["meta"]["skipped"] == meta["skipped"]
    licence = (DPWG_FILE.parent / "DPWG_LICENSE.md").read_text(encoding="utf-8")
    for name in meta["skipped"]:  # every guideline that could not be encoded is listed with its reason
        assert name.removesuffix(".json") in licence
    for g in guidelines:
        assert g.id.startswith("PA") and g.version and g.url.endswith(g.id) and g.groups
    genes = {x for g in guidelines for x in g.genes}
    assert {"CYP2D6", "DPYD", "CYP2C19", "TPMT", "NUDT15", "HLA-B", "SLCO1B1"} <= genes


@pytest.mark.parametrize(
    ("vcf", "gene", "groups"),
    [
        ("cyp2c19/s2s2.vcf", "CYP2C19", {d: "PM" for d in ("clopidogrel", "citalopram", "escitalopram", "sertraline")}),
        ("cyp3a5/s1s7.vcf", "CYP3A5", {"tacrolimus": "heterozygous expressor"}),
        ("TPMT/s3as3b.vcf", "TPMT", {"azathioprine": "PM", "mercaptopurine": "PM"}),
        ("NUDT15/s2ref.vcf", "NUDT15", {"azathioprine": "Intermediate Metabolizer"}),
        ("DPYD/c2846het.vcf", "DPYD", {d: "Activity Score 1.5" for d in ("capecitabine", "fluorouracil", "tegafur")}),
        ("DPYD/c1129-5923c2846.vcf", "DPYD", {"capecitabine": "Activity Score PHENO"}),  # not AS 1: phenotyping
        ("SLCO1B1/s5s15.vcf", "SLCO1B1", {"atorvastatin": "521 CC"}),  # *5 and *15 both carry c.521C
        ("SLCO1B1/s1s15.vcf", "SLCO1B1", {"atorvastatin": "521 CT", "simvastatin": "521 CT"}),
        ("cyp2c9/s2s3.vcf", "CYP2C9", {"phenytoin": "*2/*3", "warfarin": "*2/*3"}),  # star-specific rows
        ("CYP2B6/s1s1.vcf", "CYP2B6", {"efavirenz": "NM"}),
    ],
)
def test_vcf_genotypes_get_the_group_their_guideline_names(
    test_vcfs: Path, vcf: str, gene: str, groups: dict[str, str]
) -> None:
    report = pgx_report(test_vcfs / "haplotype" / vcf)
    for drug, name in groups.items():
        assert_group(report, drug, gene, name)


def test_cpic_and_dpwg_side_by_side(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s2s2.vcf")
    assert {d.source for d in report.drugs if d.drug == "clopidogrel"} == {"CPIC", "DPWG"}
    # CPIC's warfarin guideline needs CYP2C9, CYP4F2 and VKORC1; DPWG's VKORC1 one applies from VKORC1 alone
    assert_group(pgx_report(test_vcfs / VKORC1_AA), "warfarin", "VKORC1", "-1639 AA")


@pytest.mark.parametrize(
    ("outside", "drug", "gene", "name"),
    [
        ("CYP2D6\t*1/*3", "amitriptyline", "CYP2D6", "Intermediate Metabolizer"),  # function pair
        ("CYP2D6\t*1/*1x2", "amitriptyline", "CYP2D6", "Ultrarapid Metabolizer"),
        ("CYP2D6\t\t\t3.0", "amitriptyline", "CYP2D6", "Ultrarapid Metabolizer"),  # activity score only
        ("CYP2D6\t\t\t0.0", "amitriptyline", "CYP2D6", "Poor Metabolizer"),
        ("CYP2D6\t*4/*4", "codeine", "CYP2D6", "Poor Metabolizer"),
        ("CYP2D6\t*1/*41", "tamoxifen", "CYP2D6", "Normal Metabolizer"),  # decreased + normal: DPWG NM (AS 1.5)
        ("CYP2D6\t*4/*41", "metoprolol", "CYP2D6", "Intermediate Metabolizer"),
        ("HLA-B\t*15:02/*07:02", "lamotrigine", "HLA-B", "*15:02 positive"),
        ("HLA-A\t*31:01/*02:01", "carbamazepine", "HLA-A", "*31:01 positive"),
        ("HLA-B\t*57:01/*58:01", "abacavir", "HLA-B", "*57:01 positive"),  # *57:01 is DPWG's *57:01:01
        ("HLA-B\t*07:02/*08:01", "abacavir", "HLA-B", "*57:01 negative"),  # DPWG's 'Other'
    ],
)
def test_outside_calls_get_the_group_their_guideline_names(
    tmp_path: Path, test_vcfs: Path, outside: str, drug: str, gene: str, name: str
) -> None:
    (tmp_path / "outside.tsv").write_text(outside + "\n")
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s1.vcf", outside_calls=tmp_path / "outside.tsv")
    assert_group(report, drug, gene, name)


def test_dpwg_item_carries_source_version_and_group_in_html_fhir_and_workspace(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s2s2.vcf")
    expected = source_group("clopidogrel", "CYP2C19", "PM")
    rec = dpwg(report, "clopidogrel")
    page = render_html(report)
    assert f"DPWG v{expected['version']}" in page and f"{rec['guideline_id']}, group {expected['id']}" in page
    bundle = pgx_fhir(report)
    validate_bundle(bundle)
    notes = [n["text"] for e in bundle["entry"] for n in e["resource"].get("note", [])]
    assert any(
        t.startswith("DPWG:") and f"version {expected['version']}" in t and f"group {expected['id']}" in t
        for t in notes
    )
    (item,) = [i for i in pgx_items(json.loads(report.model_dump_json())) if i.text.startswith("CYP2C19")]
    (clop,) = [d for d in item.detail["drugs"] if d["drug"] == "clopidogrel" and d["source"] == "DPWG"]
    assert (clop["version"], clop["group_id"]) == (expected["version"], expected["id"])


def test_vkorc1_aa_gets_dpwg_coumarin_advice(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / VKORC1_AA)
    for drug in ("acenocoumarol", "phenprocoumon", "warfarin"):
        assert_group(report, drug, "VKORC1", "-1639 AA")


def test_ugt1a1_poor_metabolizer_gets_the_irinotecan_group(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/UGT1A1/s28s37.vcf")
    assert_group(report, "irinotecan", "UGT1A1", "Poor metabolizer (other than *28/*28)")


def test_abcg2_allopurinol_dpwg_beside_cpic_hla_b(tmp_path: Path) -> None:
    rows = ["chr4\t88131171\trs2231142\tG\tT\t.\tPASS\t.\tGT\t0/1"]
    report = pgx_report(write_vcf(tmp_path / "abcg2.vcf", rows, chrom="chr4", length=190214555))
    assert_group(report, "allopurinol", "ABCG2", "Decreased function GT")


def test_cyp2c9_siponimod_groups_keep_star_specific_rows(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c9/s2s3.vcf")
    assert_group(report, "siponimod", "CYP2C9", "*2/*3")


def test_multi_gene_group_needs_every_gene_it_names(tmp_path: Path) -> None:
    """A group naming CYP2C9 and VKORC1 pairs matches only when both do; a group naming VKORC1 alone ignores CYP2C9
    (a hand-written fixture: PharmCAT's DPWG files at 5f2cedbf are all single-gene)."""
    out = tmp_path / "multi.json"
    meta = build_dpwg(MULTIGENE)
    assert meta["guidelines"][0]["genes"] == ["CYP2C9", "VKORC1"]
    runner.invoke(app, ["genome", "import-dpwg", "--from", str(MULTIGENE), "--out", str(out)])
    aa = ("rs9923231 variant (T)/rs9923231 variant (T)", None)
    (m,) = match_dpwg({"CYP2C9": ("*1/*3", None), "VKORC1": aa}, out)[0]
    assert m.group.id == "PA000000030" and set(m.genes) == {"CYP2C9", "VKORC1"}
    (m,) = match_dpwg({"CYP2C9": ("*1/*1", None), "VKORC1": aa}, out)[0]
    assert m.group.id == "PA000000031" and set(m.genes) == {"VKORC1"}
    (m,) = match_dpwg({"VKORC1": aa}, out)[0]  # CYP2C9 not called: only the VKORC1-only group can apply
    assert m.group.id == "PA000000031"
    assert match_dpwg({"CYP2C9": ("*1/*3", None)}, out)[0] == []


def test_allele_unknown_to_dpwg_gives_no_dpwg_advice() -> None:
    matches, _ = match_dpwg({"UGT1A1": ("*1/*80", None)})  # *80 is not in DPWG's UGT1A1 allele list
    assert matches == []
    # DPYD c.557A>G is not in DPWG's list, and DPYD's groups are not all keyed on a score: no fallback to AS 0.5
    matches, _ = match_dpwg({"DPYD": ("c.557A>G/c.703C>T (*8)", "0.5")})
    assert matches == []


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("Total gene activity score = 0.5-1", [[0.5, 1.0]]),
        ("Total gene activity score ≥3", [[3.0, 99.0]]),
        ("1.5", [[1.5, 1.5]]),
        ("DPD enzyme activity cannot be predicted correctly", []),
        ("Gene activity score 1 (CYP2C9*1/*3)", []),  # prose with numbers is not a score
    ],
)
def test_activity_score_text(text: str, ranges: list[list[float]]) -> None:
    assert activity_ranges(text) == ranges


def test_import_dpwg_from_a_pharmgkb_layout_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "dpwg.json"
    result = runner.invoke(app, ["genome", "import-dpwg", "--from", str(FIXTURE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["guidelines"] == 1 and "CC BY-SA" in meta["licence"]
    assert meta["skipped"] == {
        "Annotation_of_DPWG_Guideline_for_norec_and_CYP2C9.json": "DPWG gives no recommendation (no annotation groups)"
    }
    hom = "rs9923231 variant (T)/rs9923231 variant (T)"
    (m,) = match_dpwg({"VKORC1": (hom, None)}, out)[0]
    assert m.group.recommendation == "Hand-written fixture: use half the dose." and m.guideline.version == "7"
    het = "rs9923231 reference (C)/rs9923231 variant (T)"  # the fixture writes this pair unsorted
    (m,) = match_dpwg({"VKORC1": (het, None)}, out)[0]
    assert m.group.name == "-1639 AG"
    monkeypatch.setenv("CARELENS_PGX_DPWG", str(out))  # reports read the rebuilt file where the setting points
    (m,) = match_dpwg({"VKORC1": (hom, None)})[0]
    assert m.guideline.drug == "testdrug"


def test_import_dpwg_never_overwrites_the_packaged_copy_implicitly(tmp_path: Path) -> None:
    before = DPWG_FILE.read_bytes()
    result = runner.invoke(app, ["genome", "import-dpwg", "--from", str(FIXTURE)])
    assert result.exit_code != 0 and "--out" in result.output
    assert DPWG_FILE.read_bytes() == before


def test_import_dpwg_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_guideline.json"
    bad.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(InputError, match="not a PharmGKB guideline annotation") as err:
        build_dpwg(bad)
    assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["genome", "import-dpwg", "--from", str(tmp_path / "empty"), "--out", "x.json"])
    assert result.exit_code != 0
