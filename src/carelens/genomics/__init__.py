"""carelens.genomics: VCF scanning, pharmacogenomics (star alleles, phenotypes, CPIC), ACMG secondary findings,
cohort frequencies."""

from carelens.genomics.cohort import CohortResult, cohort_frequencies, write_to_lake
from carelens.genomics.definitions import load_definitions, write_definitions
from carelens.genomics.findings import Finding, FindingsReport, find_secondary, load_acmg
from carelens.genomics.matcher import GeneCall, call_gene
from carelens.genomics.pgx import (
    DrugRecommendation,
    GeneResult,
    PgxReport,
    gene_result,
    pgx_report,
    read_outside_calls,
    report_from_calls,
)
from carelens.genomics.render import findings_tsv, pgx_tsv, render_html
from carelens.genomics.vcf import SampleCall, VcfInfo, read_calls, scan, vcf_info

__all__ = [
    "CohortResult",
    "DrugRecommendation",
    "Finding",
    "FindingsReport",
    "GeneCall",
    "GeneResult",
    "PgxReport",
    "SampleCall",
    "VcfInfo",
    "call_gene",
    "cohort_frequencies",
    "find_secondary",
    "findings_tsv",
    "gene_result",
    "load_acmg",
    "load_definitions",
    "pgx_report",
    "pgx_tsv",
    "read_calls",
    "read_outside_calls",
    "render_html",
    "report_from_calls",
    "scan",
    "vcf_info",
    "write_definitions",
    "write_to_lake",
]
