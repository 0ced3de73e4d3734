"""dashboard.py in a real browser (Debian's chromium + chromedriver through Selenium) against a live service on
127.0.0.1 with a store and an artifact set from a short simulation, plus the same pages over plain HTTP."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import polars as pl
import pytest
import uvicorn
from fastapi.testclient import TestClient

from selflearn.artifacts import ArtifactStore
from selflearn.controls import Control, Controls, rule_frame, rule_id
from selflearn.learners.learn import learn
from selflearn.learners.mining import RewriteTables
from selflearn.service import pages
from selflearn.service import snapshot as dashboard_snapshot
from selflearn.service.app import create_app
from selflearn.service.service import Service
from selflearn.service.tokens import Tokens
from selflearn.sim import generate_homes
from selflearn.sim.run import simulate
from selflearn.store.logstore import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """4 simulated homes x 3 days in a store, one learning run, the service on a free loopback port."""
    root = tmp_path_factory.mktemp("dashboard")
    world = generate_homes(4, 0)
    with Store(root / "logs.duckdb") as store:
        for log in simulate(world, days=3, seed=0):
            store.add(turns=log.turns, gold=log.gold, feedback=log.feedback)
        logs = store.logs()
    artifacts = ArtifactStore(root / "artifacts")
    assert learn(logs, artifacts, homes=world).published
    rules = rule_frame(RewriteTables.load(artifacts.current_dir()))  # type: ignore[arg-type]
    personal = rules.filter(pl.col("kind") == "personal")
    owners = {p.id: h.id for h in world for p in h.people}
    by_home = personal.with_columns(home=pl.col("user_id").replace_strict(owners)).group_by("home").len()
    mine, other = by_home.sort("len", descending=True)["home"].to_list()[:2]
    tokens = Tokens(root / "tokens.json")
    home_token, _ = tokens.create(home=mine)
    other_token, _ = tokens.create(home=other)
    admin_token, _ = tokens.create(home=None, admin=True)
    service = Service(world, db=root / "logs.duckdb", artifacts=artifacts.root, tokens=tokens, pending_root=root / "p")
    port = _free_port()
    app = create_app(service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as admin:  # the dashboard reads the logs in a thread
        admin.post("/dashboard/login", data={"token": admin_token})
        while 'id="reading"' in admin.get("/").text and time.monotonic() < deadline + 60:
            time.sleep(0.1)
    yield {
        "url": f"http://127.0.0.1:{port}",
        "service": service,
        "logs": app.state.dashboard_logs,
        "homes": {h.id: h for h in world},
        "mine": mine,
        "other": other,
        "rules": rules.with_columns(home=pl.col("user_id").replace_strict(owners, default=None)),
        "tokens": {mine: home_token, other: other_token, "admin": admin_token},
    }
    server.should_exit = True
    thread.join(timeout=10)
    service.close()


def signed_in(site: dict[str, Any], who: str) -> httpx.Client:
    client = httpx.Client(base_url=site["url"])
    r = client.post("/dashboard/login", data={"token": site["tokens"][who]})
    assert r.status_code == 303 and r.headers["location"] == "/"
    return client


def interpret(site: dict[str, Any], text: str, user: str) -> dict[str, Any]:
    home = site["homes"][site["mine"]]
    body = {"text": text, "user_id": user, "device_id": home.endpoints[0].id}
    headers = {"Authorization": f"Bearer {site['tokens'][site['mine']]}"}
    r = httpx.post(site["url"] + "/v1/interpret", json=body, headers=headers)
    assert r.status_code == 200, r.text
    turn: dict[str, Any] = r.json()["turn"]
    return turn


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def test_pages_need_a_token_and_refuse_unknown_ones(site: dict[str, Any]) -> None:
    for path in ("/", "/dashboard/trend", "/dashboard/failures", "/dashboard/people"):
        r = httpx.get(site["url"] + path)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    r = httpx.post(site["url"] + "/dashboard/login", data={"token": "slt_nope"})
    assert r.status_code == 401 and "Unknown token" in r.text
    r = httpx.post(site["url"] + "/dashboard/rules/0123456789abcdef/disable")
    assert r.status_code == 401


def test_a_home_sees_only_its_own_rules_and_people(site: dict[str, Any]) -> None:
    client = signed_in(site, site["mine"])
    mine, other = site["homes"][site["mine"]], site["homes"][site["other"]]
    page = client.get("/").text
    theirs = site["rules"].filter(pl.col("home") == other.id)
    assert theirs.height and all(rid not in page for rid in theirs["rule_id"])
    ours = site["rules"].filter(pl.col("home") == mine.id)
    assert all(rid in page for rid in ours["rule_id"])
    people = client.get("/dashboard/people").text
    assert all(p.id in people for p in mine.people) and not any(p.id in people for p in other.people)
    for action in ("disable", "pin"):  # another home's rule is unknown here, like an unknown id
        assert client.post(f"/dashboard/rules/{theirs['rule_id'][0]}/{action}").status_code == 404
    assert client.post(f"/dashboard/people/{other.people[0].id}/forget").status_code == 404
    assert client.post(f"/dashboard/versions/{site['service'].artifacts.current()}/rollback").status_code == 403
    admin = signed_in(site, "admin").get("/").text
    assert all(rid in admin for rid in site["rules"]["rule_id"])


def test_cross_site_posts_are_refused(site: dict[str, Any]) -> None:
    client = signed_in(site, site["mine"])
    rule = site["rules"].filter(pl.col("home") == site["mine"])["rule_id"][0]
    r = client.post(f"/dashboard/rules/{rule}/pin", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert not [c for c in Controls(site["service"].artifacts.root).all() if c.action == "pin"]


def test_a_disabled_rule_no_longer_in_the_set_stays_listed_to_undo(site: dict[str, Any]) -> None:
    person = site["homes"][site["mine"]].people[0].id
    rule = {"kind": "personal", "user_id": person, "source": "lights of", "target": "lights off", "support": 3}
    rule |= {"probability": 1.0, "distinct_users": 1, "source_intent": None, "target_intent": "HassTurnOff"}
    rule |= {"layer": "personal"}
    rid = rule_id("personal", person, "lights of", "lights off")
    controls = Controls(site["service"].artifacts.root)
    controls.set(Control(rid, "disable", None, rule, "test", "2026-12-07T00:00:00+00:00"))
    client = signed_in(site, site["mine"])
    page = client.get("/", params={"status": "disabled", "q": "lights of"}).text
    assert f'data-rule="{rid}"' in page and f"/dashboard/rules/{rid}/enable" in page
    assert client.post(f"/dashboard/rules/{rid}/enable").status_code == 303
    assert rid not in client.get("/").text and rid not in {c.rule_id for c in controls.all()}


def test_dashboard_in_a_browser(site: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from selflearn.schema import Preference

    wait = WebDriverWait(browser, 30)
    browser.get(site["url"] + "/")
    wait.until(ec.presence_of_element_located((By.ID, "token"))).send_keys(site["tokens"][site["mine"]])
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    cards = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "article.rule")))
    browser.save_screenshot(str(tmp_path / "learned.png"))

    # the rule fires before, and no longer once disabled in the page
    ours = site["rules"].filter(pl.col("home") == site["mine"])
    rule = next(r for r in ours.iter_rows(named=True) if interpret(site, r["source"], r["user_id"])["rewritten_text"])
    card = next(c for c in cards if c.get_attribute("data-rule") == rule["rule_id"])
    card.find_element(By.CSS_SELECTOR, "button.disable").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"article.disabled[data-rule='{rule['rule_id']}']")))
    turn = interpret(site, rule["source"], rule["user_id"])
    assert turn["rewrite_source"] != "personal" and turn["rewritten_text"] != rule["target"]

    browser.get(site["url"] + "/dashboard/trend")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#trend svg.main-svg")))
    assert browser.find_elements(By.CSS_SELECTOR, "#trend .scatterlayer .trace")
    browser.save_screenshot(str(tmp_path / "trend.png"))
    person = site["homes"][site["mine"]].people[-1].id  # a taught preference, edited in the page
    taught = Preference(user_id=person, kind="cuisine", value="Thai", ts=datetime.now(UTC))
    site["service"].teacher.store.put_preference(taught)
    for name in ("failures", "people"):
        browser.get(f"{site['url']}/dashboard/{name}")
        wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        browser.save_screenshot(str(tmp_path / f"{name}.png"))
    people = browser.find_elements(By.CSS_SELECTOR, "article.person")
    assert {p.get_attribute("data-user") for p in people} == {p.id for p in site["homes"][site["mine"]].people}
    edit = browser.find_element(By.CSS_SELECTOR, f"article.person[data-user='{person}'] form.edit")
    field = edit.find_element(By.NAME, "value")
    field.clear()
    field.send_keys("sushi")
    edit.find_element(By.TAG_NAME, "button").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"article.person[data-user='{person}']"), "Japanese"))
    assert [p.value for p in site["service"].teacher.store.preferences(person)] == ["Japanese"]
    browser.save_screenshot(str(tmp_path / "people-edited.png"))

    browser.set_window_size(390, 844)  # a phone: nothing wider than the screen
    for name in ("learned", "trend", "failures", "people"):
        browser.get(site["url"] + ("/" if name == "learned" else f"/dashboard/{name}"))
        wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), name
        browser.save_screenshot(str(tmp_path / f"phone-{name}.png"))
    browser.set_window_size(1280, 900)

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    hosts = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlsplit(message["params"]["request"]["url"])
            hosts.add(url.hostname if url.scheme in ("http", "https", "ws", "wss") else url.scheme)
    assert hosts <= {"127.0.0.1", "data"}, hosts
    assert "127.0.0.1" in hosts


def test_pin_delete_preference_and_forget_from_the_pages(site: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from selflearn.schema import Preference

    service = site["service"]
    client = signed_in(site, site["mine"])
    ours = site["rules"].filter(pl.col("home") == site["mine"])
    pinned = ours["rule_id"][-1]
    assert client.post(f"/dashboard/rules/{pinned}/pin").status_code == 303
    assert 'class="card rule pinned"' in client.get("/", params={"status": "pinned"}).text

    user = ours["user_id"][0]
    service.teacher.store.put_preference(Preference(user_id=user, kind="team", value="Lakers", ts=datetime.now(UTC)))
    edit = {"kind": "team", "key": "", "scope": "*", "value": "the dubs"}
    assert client.post(f"/dashboard/people/{site['homes'][site['other']].people[0].id}/preferences/edit", data=edit
                       ).status_code == 404  # fmt: skip
    assert client.post(f"/dashboard/people/{user}/preferences/edit", data=edit | {"value": ""}).status_code == 422
    assert client.post(f"/dashboard/people/{user}/preferences/edit", data=edit).status_code == 303
    assert [p.value for p in service.teacher.store.preferences(user)] == ["Golden State Warriors"]
    service.teacher.store.put_preference(Preference(user_id=user, kind="team", value="Warriors", ts=datetime.now(UTC)))
    assert "Warriors" in client.get("/dashboard/people").text
    r = client.post(f"/dashboard/people/{user}/preferences/delete", data={"kind": "team", "key": ""})
    assert r.status_code == 303 and not service.teacher.store.preferences(user)

    assert client.post(f"/dashboard/people/{user}/forget").status_code == 303
    service.flush()
    assert not sum(service.store.user_rows(user).values())
    page = client.get("/").text
    assert user not in page  # their personal rules (every version) and the decisions about them are gone
    assert all(c.rule.get("user_id") != user for c in Controls(service.artifacts.root).all())
    people = client.get("/dashboard/people").text
    assert f'data-user="{user}"' in people and "0 turns" in people


def test_each_rule_shows_its_homes_and_shadow_check_sortable_and_filterable(site: dict[str, Any]) -> None:
    rules = site["rules"]
    assert rules["distinct_homes"].null_count() == 0 and rules["shadow_fixes"].is_not_null().any()
    client = signed_in(site, "admin")
    top = rules.sort(["shadow_fixes", "support"], descending=True, nulls_last=True).row(0, named=True)
    page = client.get("/", params={"sort": "fixes"}).text
    first = page.split('<article class="card rule')[1]
    assert f'data-rule="{top["rule_id"]}"' in first
    assert f'<dd class="shadow">fixed {top["shadow_fixes"]}, broke {top["shadow_breaks"]}</dd>' in first
    assert f'<dd class="homes">{top["distinct_homes"]}</dd>' in first
    broke = set(re.findall(r'data-rule="([0-9a-f]{16})"', client.get("/", params={"shadow": "broke"}).text))
    breaking = set(rules.filter(pl.col("shadow_breaks") > 0)["rule_id"])
    assert broke <= breaking and len(broke) == min(len(breaking), pages.PAGE_SIZE)


def test_a_set_published_before_the_evidence_shows_a_dash(site: dict[str, Any], tmp_path: Path) -> None:
    """An artifact set whose rule tables lack the evidence columns (written before them) still loads and lists."""
    from selflearn.runtime.rewrites import GLOBAL_TABLE, REWRITE_SCHEMA

    service = site["service"]
    old = pl.DataFrame(
        [{"source": "lights of", "target": "lights off", "probability": 1.0, "support": 9, "distinct_users": 6,
          "source_intent": None, "target_intent": "HassTurnOff", "layer": "global", "user_id": None}],
        schema=REWRITE_SCHEMA,
    )  # fmt: skip

    def build(root: Path) -> None:
        (root / GLOBAL_TABLE).parent.mkdir(parents=True)
        old.write_parquet(root / GLOBAL_TABLE)

    before = service.artifacts.current()
    service.artifacts.publish(build, meta={})
    try:
        page = signed_in(site, "admin").get("/", params={"q": "lights of", "kind": "global"}).text
        card = page.split(f'data-rule="{rule_id("global", None, "lights of", "lights off")}"')[1]
        assert '<dd class="homes">—</dd>' in card and '<dd class="shadow">—</dd>' in card
    finally:
        service.artifacts.rollback(before)


def test_a_person_forgotten_through_the_api_leaves_the_pages_at_once(
    site: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DELETE /v1/users/{id}`` (not the page): their failing forms, example turns and turn count leave the
    dashboard on the next page, while no rebuild of the snapshot can finish."""
    gate = threading.Event()
    real = dashboard_snapshot.build_snapshot

    def blocked(*args: Any) -> dashboard_snapshot.Snapshot:
        assert gate.wait(60)
        return real(*args)

    client = signed_in(site, site["mine"])
    client.get("/dashboard/people")  # a snapshot exists
    snapshot = site["logs"].current()
    mine = snapshot.forms.filter(pl.col("home_id") == site["mine"])
    alone = mine.filter(pl.col("users") == 1).with_columns(user=pl.col("people").list.first().struct.field("user_id"))
    user = alone.group_by("user").len().sort("len", descending=True)["user"][0]
    forms = alone.filter(pl.col("user") == user)["form"].to_list()
    failures = client.get("/dashboard/failures").text
    assert user in failures and any(f"<q>{f}</q>" in failures for f in forms)
    monkeypatch.setattr(dashboard_snapshot, "build_snapshot", blocked)
    try:
        headers = {"Authorization": f"Bearer {site['tokens'][site['mine']]}"}
        assert httpx.delete(f"{site['url']}/v1/users/{user}", headers=headers).status_code == 200
        failures = client.get("/dashboard/failures").text
        assert user not in failures and not any(f"<q>{f}</q>" in failures for f in forms)
        people = client.get("/dashboard/people").text
        card = people.split(f'data-user="{user}"')[1].split("</article>")[0]
        assert "<p>0 turns" in card
    finally:
        gate.set()


def test_admin_rolls_back_an_artifact_set(site: dict[str, Any]) -> None:
    service = site["service"]
    first = service.artifacts.current()
    with service.store_lock:
        logs = service.store.logs()
    second = learn(logs, service.artifacts, homes=list(site["homes"].values())).version
    assert second != first
    home = signed_in(site, site["mine"])
    assert f"/dashboard/versions/{first}/rollback" not in home.get("/").text
    assert home.post(f"/dashboard/versions/{first}/rollback").status_code == 403
    admin = signed_in(site, "admin")
    assert f"/dashboard/versions/{first}/rollback" in admin.get("/").text
    assert admin.post(f"/dashboard/versions/{first}/rollback").status_code == 303
    assert service.artifacts.current() == first
    assert admin.post("/dashboard/versions/99999-nope/rollback").status_code == 422


def test_a_home_disables_a_shared_rule_for_itself_only_and_only_an_admin_pins_it(site: dict[str, Any]) -> None:
    service = site["service"]
    current = service.artifacts.current_dir()
    tables = RewriteTables.load(current)
    shared = pl.DataFrame(
        [{"source": "lights of", "target": "lights off", "probability": 1.0, "support": 9, "distinct_users": 6,
          "source_intent": None, "target_intent": "HassTurnOff", "layer": "global", "user_id": None}]
    )  # fmt: skip
    tables = RewriteTables(pl.concat([tables.global_table, shared], how="diagonal_relaxed"), tables.personal_table)
    service.artifacts.publish(tables.save, meta={})
    service.rewriter.reload_if_changed()
    rid = rule_id("global", None, "lights of", "lights off")
    mine, other = (site["homes"][site[k]] for k in ("mine", "other"))

    def rewritten(home_key: str) -> str | None:
        home = site["homes"][site[home_key]]
        body = {"text": "lights of", "user_id": home.people[0].id, "device_id": home.endpoints[0].id}
        headers = {"Authorization": f"Bearer {site['tokens'][site[home_key]]}"}
        r = httpx.post(site["url"] + "/v1/interpret", json=body, headers=headers)
        text: str | None = r.json()["turn"]["rewritten_text"]
        return text

    assert rewritten("mine") == rewritten("other") == "lights off"
    client = signed_in(site, mine.id)
    assert client.post(f"/dashboard/rules/{rid}/pin").status_code == 403
    assert (
        client.post(f"/dashboard/rules/{rid}/disable", headers={"Referer": "http://x//evil.example/"}).headers[
            "location"
        ]
        == "/"
    )
    assert [(c.rule_id, c.home_id) for c in Controls(service.artifacts.root).all() if c.rule_id == rid] == [
        (rid, mine.id)
    ]
    assert rewritten("mine") != "lights off" and rewritten("other") == "lights off"
    assert f'data-rule="{rid}"' in signed_in(site, other.id).get("/", params={"status": "live"}).text
    admin = signed_in(site, "admin")
    assert admin.post(f"/dashboard/rules/{rid}/pin").status_code == 303
    assert f'data-rule="{rid}"' in admin.get("/", params={"status": "pinned"}).text


def test_the_first_pages_answer_at_once_while_one_snapshot_builds(
    site: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store slow to score: every page still answers within the 1 s budget with a page that refreshes itself and
    says how many turns it is reading, no second build starts, and the real page follows once the build is done."""
    calls: list[int] = []
    gate = threading.Event()
    real = dashboard_snapshot.build_snapshot

    def slow(*args: Any) -> dashboard_snapshot.Snapshot:
        calls.append(1)
        assert gate.wait(60)
        return real(*args)

    monkeypatch.setattr(dashboard_snapshot, "build_snapshot", slow)
    earlier = {t for t in threading.enumerate() if t.name == "selflearn-dashboard-logs"}  # other apps' builds
    client = TestClient(create_app(site["service"]))  # a freshly started app over the same store: no snapshot yet
    try:
        assert client.post("/dashboard/login", data={"token": site["tokens"]["admin"]}, follow_redirects=False)
        start = time.perf_counter()
        first = client.get("/")
        assert time.perf_counter() - start < 1.0
        assert first.status_code == 200 and '<meta http-equiv="refresh"' in first.text and 'id="reading"' in first.text
        while not calls:  # the build has counted the store and started scoring
            time.sleep(0.01)
        builds = [t for t in threading.enumerate() if t.name == "selflearn-dashboard-logs" and t not in earlier]
        assert len(builds) == 1 and not builds[0].daemon  # started from a daemon worker: an exit still waits for it
        with site["service"].store_lock:
            stored = site["service"].store.counts()["turns"]
        for path in ("/", "/dashboard/trend", "/dashboard/failures", "/dashboard/people"):
            start = time.perf_counter()
            page = client.get(path).text
            assert time.perf_counter() - start < 1.0
            assert f"Still reading {stored:,} turns" in page and "data-rule=" not in page
        assert len(calls) == 1
    finally:
        gate.set()
    deadline = time.monotonic() + 60
    while 'id="reading"' in (page := client.get("/").text) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "data-rule=" in page and '<meta http-equiv="refresh"' not in page and len(calls) == 1


def test_a_closing_service_stops_a_snapshot_build_before_it_reads_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that was flushing when the service closed never touches the closed store, and none starts after."""
    homes = generate_homes(1, 0)
    service = Service(homes, db=tmp_path / "logs.duckdb", artifacts=tmp_path / "a", pending_root=tmp_path)
    logs = dashboard_snapshot.Logs(service)
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    flushing, gate = threading.Event(), threading.Event()
    flush = service.flush

    def slow_flush() -> None:
        if threading.current_thread().name == "selflearn-dashboard-logs":
            flushing.set()
            assert gate.wait(60)
        flush()

    monkeypatch.setattr(service, "flush", slow_flush)
    logs.start()
    assert flushing.wait(30)
    service.close()
    gate.set()
    for thread in threading.enumerate():
        if thread.name == "selflearn-dashboard-logs":
            thread.join(timeout=30)
    assert errors == [] and logs.reading is None
    assert logs.current() is None
    assert all(t.name != "selflearn-dashboard-logs" for t in threading.enumerate())


def test_a_person_forgotten_while_a_snapshot_builds_is_not_in_it(
    site: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that read the store before a person was forgotten drops them before its snapshot is served."""
    scoring, gate = threading.Event(), threading.Event()
    real = dashboard_snapshot.build_snapshot

    def slow(*args: Any) -> dashboard_snapshot.Snapshot:
        scoring.set()
        assert gate.wait(60)
        return real(*args)

    monkeypatch.setattr(dashboard_snapshot, "build_snapshot", slow)
    service = site["service"]
    with service.store_lock:
        users = service.store.logs().turns()["user_id"].unique().sort().to_list()
    gone, kept = users[:2]
    logs = dashboard_snapshot.Logs(service)
    logs.start()
    assert scoring.wait(30)
    logs.forget(gone)
    gate.set()
    deadline = time.monotonic() + 60
    while (snapshot := logs.current()) is None and time.monotonic() < deadline:
        pass
    assert snapshot is not None and kept in snapshot.user_turns and gone not in snapshot.user_turns
    assert all(gone not in f["user_id"].to_list() for f in snapshot.heard.values())
