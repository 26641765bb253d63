"""End to end in a real browser (Debian Chromium driven by Playwright) against ``carelens
serve`` running as a subprocess: a clinician checks a citation, rejects an item with a reason
and signs off; a researcher is refused the patient page. Screenshots go to test-artifacts/e2e."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.fixture_store import CITED, PID, write_store

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
PASSWORD = "e2e password 123"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (/usr/bin/chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "carelens.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# ``carelens serve`` with the fixture store's summariser registered under "fixture"
SERVE = (
    "import sys; from carelens.server import summarizers; from tests.server.fixture_store import summarize;"
    " summarizers.register('fixture', summarize); from carelens.cli import main; sys.argv[0] = 'carelens'; main()"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    store = write_store(tmp_path_factory.mktemp("e2e") / "store")
    env = {
        **os.environ,
        "CARELENS_STORE": str(store),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),  # this checkout's carelens and tests
        "CARELENS_SUMMARIZER": "fixture",
    }
    env.pop("CARELENS_DB_URL", None)
    for user in ("clinician", "researcher", "admin"):
        _cli(env, "users", "add", user, "--role", user, stdin=PASSWORD + "\n")
    port = _free_port()
    log = (tmp_path_factory.getbasetemp() / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port), "--store", str(store)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("carelens serve did not start within 90 s")
    yield base, env
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def _login(page, base: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")


def test_clinician_checks_evidence_rejects_and_signs(server, browser) -> None:  # type: ignore[no-untyped-def]
    base, env = server
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the sign-off confirmation
    _login(page, base, "clinician")
    assert page.url == f"{base}/patients"
    page.click("text=Zebulon Canaryfield")
    assert page.url == f"{base}/patients/{PID}"
    assert page.locator("#needs-attention li.item").count() == 4
    pgx = page.locator("#needs-attention li.item", has_text="CYP2C19 *1/*2").inner_text()
    assert "clopidogrel (taken: Clopidogrel 75 MG Oral Tablet)" in pgx and "consider an alternative" in pgx
    assert "clinician decides" in pgx
    page.screenshot(path=str(ARTIFACTS / "1-patient-page.png"), full_page=True)

    page.click("a.citation[title='DocumentReference/note-hp']")
    mark = page.locator("mark#cited")
    assert mark.inner_text() == CITED
    assert mark.is_visible()
    page.screenshot(path=str(ARTIFACTS / "2-cited-span.png"))
    page.go_back()

    item = page.locator("li.item", has_text="Hypertension")
    item.locator("select[name=action]").select_option("reject")
    item.locator("input[name=reason]").fill("resolved in 2019 per cardiology letter")
    item.locator("button[type=submit]").click()
    page.wait_for_load_state()
    rejected = page.locator("li.item.decided-reject", has_text="Hypertension")
    assert "resolved in 2019 per cardiology letter" in rejected.inner_text()

    accept = page.locator("#summary li.item", has_text="Clopidogrel 75 MG Oral Tablet")
    accept.locator("select[name=action]").select_option("accept")
    accept.locator("button[type=submit]").click()
    page.wait_for_load_state()
    page.screenshot(path=str(ARTIFACTS / "3-decisions.png"), full_page=True)

    page.click("#sign-off")
    page.wait_for_url(f"{base}/patients/{PID}/signed/*")
    body = page.inner_text("main")
    assert "Signed by clinician" in body and "resolved in 2019 per cardiology letter" in body
    page.screenshot(path=str(ARTIFACTS / "4-signed.png"), full_page=True)
    context.close()

    verified = json.loads(_cli(env, "audit", "verify"))
    assert verified["ok"] is True and verified["bad_row"] is None and verified["rows"] > 0


def test_clinician_asks_the_record_and_opens_the_cited_note(server, browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _login(page, base, "clinician")
    page.goto(f"{base}/patients/{PID}")
    page.fill("form.ask input[name=q]", "does he have chest pain?")
    page.click("form.ask button")
    page.wait_for_url(f"{base}/patients/{PID}/ask?q=*")
    hits = page.locator("ol.hits li")
    assert hits.count() >= 1 and "Search results, not an answer" in page.inner_text("main")
    first = hits.first
    assert "denies chest pain" in first.inner_text() and "similarity" in first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "2b-ask.png"), full_page=True)
    first.locator("a", has_text="source").click()
    mark = page.locator("mark#cited")
    assert CITED in mark.inner_text() and mark.is_visible()  # the passage's sentence, marked in its note
    page.goto(f"{base}/patients/{PID}/ask?q=" + "has he been to the moon?".replace(" ", "+"))
    assert page.locator("ol.hits li").count() == 0 and "Nothing relevant found" in page.inner_text("main")
    context.close()


def test_researcher_is_refused_the_patient_page(server, browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    context = browser.new_context()
    page = context.new_page()
    _login(page, base, "researcher")
    assert page.url == f"{base}/research"
    assert "Canaryfield" not in page.content()
    response = page.goto(f"{base}/patients/{PID}")
    assert response is not None and response.status == 403
    assert "may not see this" in page.inner_text("main")
    assert "Canaryfield" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "5-researcher-refused.png"))
    context.close()


def test_admin_disables_a_user_whose_open_session_ends_at_once(server, browser) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    clinician = browser.new_context().new_page()
    _login(clinician, base, "clinician")
    assert clinician.url == f"{base}/patients"
    admin_context = browser.new_context(viewport={"width": 1280, "height": 800})
    admin = admin_context.new_page()
    _login(admin, base, "admin")
    assert admin.url == f"{base}/admin/users"
    admin.locator("#user-clinician button", has_text="Disable").click()
    admin.wait_for_url(f"{base}/admin/users")
    assert "disabled" in admin.locator("#user-clinician").inner_text()
    admin.screenshot(path=str(ARTIFACTS / "6-admin-disabled-user.png"))
    clinician.goto(f"{base}/patients")
    assert clinician.url.startswith(f"{base}/login")
    _login(clinician, base, "clinician")
    assert "Wrong user name or password" in clinician.inner_text("main")
    admin.locator("#user-clinician button", has_text="Enable").click()
    admin.wait_for_url(f"{base}/admin/users")
    _login(clinician, base, "clinician")
    assert clinician.url == f"{base}/patients"
    clinician.context.close()
    admin_context.close()
