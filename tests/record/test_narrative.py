"""The optional narrative: a local stand-in chat server returns planted faithful and
unfaithful sentences; the checker keeps the first and drops the second."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from carelens.record import build_record, summarize
from carelens.record.narrative import add_narrative, check_sentences, fact_sheet


class StandIn:
    """An OpenAI-compatible chat endpoint on loopback that answers ``reply`` and keeps requests."""

    def __init__(self) -> None:
        self.reply = ""
        self.requests: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append({"path": self.path, "body": body})
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": stand_in.reply}}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def fact_id(facts, startswith: str) -> str:
    return next(f.id for f in facts if f.text.startswith(startswith))


def test_checker_keeps_faithful_and_drops_unfaithful_sentences(small_resources, stand_in):
    summary = summarize(build_record(small_resources), notes=False)
    facts = fact_sheet(summary)
    warfarin = fact_id(facts, "Warfarin Sodium")
    potassium = fact_id(facts, "Critical result: Potassium")
    htn = fact_id(facts, "Hypertension")
    faithful = [
        f"She has hypertension since 2015-06-01 [{htn}].",
        f"She takes warfarin 5 mg once daily [{warfarin}].",
        f"Her potassium was critical at 6.4 mmol/L on 2024-03-01 [{potassium}].",
    ]
    unfaithful = [
        f"She takes apixaban 5 mg once daily [{warfarin}].",  # wrong drug
        f"Her potassium was 7.4 mmol/L on 2024-03-01 [{potassium}].",  # wrong number
        f"She has had diabetes since 2015-06-01 [{htn}].",  # problem not in the fact
        f"Warfarin was started on 2022-01-05 [{warfarin}].",  # wrong date
        "She is doing well overall.",  # cites nothing
    ]
    stand_in.reply = " ".join(faithful[:2] + unfaithful[:3] + faithful[2:] + unfaithful[3:])
    add_narrative(summary, url=stand_in.url, model="stand-in")

    assert [i.text for i in summary.narrative] == [s.split(" [")[0] + "." for s in faithful]
    assert all(i.source == "narrative" and i.citations for i in summary.narrative)
    reasons = {d.text: d.reason for d in summary.dropped}
    assert reasons == {
        "She takes apixaban 5 mg once daily.": "narrative: 1 name words are not in the cited evidence",
        "Her potassium was 7.4 mmol/L on 2024-03-01.": "narrative: a number is not in the cited evidence",
        "She has had diabetes since 2015-06-01.": "narrative: 1 name words are not in the cited evidence",
        "Warfarin was started on 2022-01-05.": "narrative: a date is not in the cited evidence",
        "She is doing well overall.": "narrative: the sentence cites no known fact",
    }
    request = stand_in.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "stand-in"
    assert f"{warfarin}: Warfarin Sodium 5 MG Oral Tablet" in request["body"]["messages"][1]["content"]


def test_unreachable_endpoint_is_a_warning(small_resources):
    summary = summarize(build_record(small_resources), notes=False)
    add_narrative(summary, url="http://127.0.0.1:9/v1", timeout=2)
    assert summary.narrative == []
    assert any(w.startswith("narrative endpoint gave no usable answer") for w in summary.warnings)


def test_sentence_split_keeps_citations_per_sentence(small_resources):
    facts = fact_sheet(summarize(build_record(small_resources), notes=False))
    htn = fact_id(facts, "Hypertension")
    kept, dropped = check_sentences(f"Hypertension since 2015-06-01 [{htn}]. Onset was in 2015 [{htn}].", facts)
    assert [k.text for k in kept] == ["Hypertension since 2015-06-01.", "Onset was in 2015."]
    assert dropped == []
    assert kept[0].citations[0].resource == "Condition/c1"
