"""The run inspector (/ui/) in a real browser: Debian's chromium, headless, through Playwright.

After the demo against a fleet on loopback (DNS, three of our pods, a proxy, the runtime:
127.0.0.220-223), the pages show what the API knows: runs, steps with the pods that ran
them, errors, the fleet's pods and their states. A second runtime (127.0.0.225) requires a
token, is configured with a proxy that does not answer, and is given 10,000 runs: the token
prompt, an unreachable proxy, and the list of 10,000 runs. Screenshots go to ``$UI_SCREENSHOTS`` (``docs/`` makes the ones there).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from local_fleet.demo import run_demo
from tests.e2e.fleet import WORKFLOWS, Fleet
from tests.support.runtime import remote_plugin_config, start_runtime
from tests.support.services import start_dns
from tests.support.waiting import wait_until
from tests.ui.browser import NARROW, chromium, long_tasks, page_of, screenshot

HUB = "127.0.0.220"
PODS = ["127.0.0.221", "127.0.0.222", "127.0.0.223"]
GUARDED = "127.0.0.225"
NO_PROXY = "127.0.0.224:8080"
"""Where the guarded runtime's remote plugin points: nothing listens there."""
TOKEN = "ui-test-token"
STORED_RUNS = 10_000
WIDE_STEPS = 200
LONGEST_TASK_MS = 1500
"""What counts as the page freezing: one task holding the main thread this long (2 shared cores, so generous)."""
RENDER_SECONDS = 8.0


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("UI_SCREENSHOTS")
    return Path(where).resolve() if where else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    logs = tmp_path_factory.mktemp("fleet")
    dns, records = start_dns(logs, f"{HUB}:5390")
    fleet = Fleet("ours", PODS, 8090, 7890, logs, hub=HUB, dns_listen=f"{HUB}:5390")
    try:
        fleet.start(records)
        yield fleet
    finally:
        fleet.stop()
        dns.stop()


def api(fleet: Fleet, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(method, f"{fleet.runtime_url}/api/v1{path}", timeout=60, **kwargs)
    answer.raise_for_status()
    return answer.json()


def flow_file(name: str) -> Any:
    import yaml

    return yaml.safe_load((WORKFLOWS / f"{name}.yaml").read_text())


def wide_flow(steps: int) -> dict[str, Any]:
    """``steps`` builtin steps in columns of 10, each reading the one before it in its row."""

    def step(n: int) -> dict[str, Any]:
        data = {"n": n, "before": {"$step": f"s{n - 10}"}} if n >= 10 else {"n": n}
        return {"id": f"s{n}", "component": "/put_blob", "input": {"data": data, "blob_type": "data"}}

    return {
        "schema": "https://stepflow.org/schemas/v1/flow.json",
        "name": "two-hundred-steps",
        "steps": [step(n) for n in range(steps)],
        "output": {f"last{n}": {"$step": f"s{n}"} for n in range(steps - 10, steps)},
    }


@pytest.fixture(scope="module")
def demo(fleet: Fleet) -> dict[str, str]:
    """The demo of demo.md, a batch with a failing item, and a run of 200 steps; their run ids by name."""
    assert run_demo([fleet.runtime_url], [], [], None)
    batch = api(fleet, "POST", "/runs", json={"flow": flow_file("batch-workflow"), "input": [{"value": 5, "iterations": 3}, {"value": 5, "iterations": 1000}]})
    wide = api(fleet, "POST", "/runs", json={"flow": wide_flow(WIDE_STEPS), "input": [{}]})
    parallel = api(fleet, "GET", "/runs", params={"flowName": "parallel-bidirectional-test", "limit": 1})["runs"][0]
    assert (batch["status"], wide["status"]) == ("failed", "completed")
    return {"failed": batch["runId"], "wide": wide["runId"], "parallel": parallel["runId"]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with page_of(browser) as page:
        yield page


def instance_ids(fleet: Fleet) -> set[str]:
    return {httpx.get(f"http://{address}:8080/health").json()["instanceId"] for address in PODS}


def test_runs_list_shows_the_runs_newest_first_and_new_ones_without_a_reload(fleet: Fleet, demo: dict[str, str], page: Page, shots: Path) -> None:
    page.goto(f"{fleet.runtime_url}/ui/")
    rows = page.locator("table.runs tbody tr[data-run]")
    expect(rows.first).to_be_visible()
    listed = api(fleet, "GET", "/runs", params={"limit": 100})["runs"]
    assert rows.evaluate_all("rows => rows.map(row => row.dataset.run)")[:5] == [run["runId"] for run in listed[:5]]
    expect(page.locator(f'tr[data-run="{demo["failed"]}"]')).to_contain_text("batch-workflow")
    expect(page.locator(f'tr[data-run="{demo["failed"]}"] .badge')).to_have_text("failed")
    screenshot(page, shots / "ui-runs.png")
    started = api(fleet, "POST", "/runs", json={"flow": flow_file("simple-test-workflow"), "input": [{"value": 4}], "wait": False})
    expect(page.locator(f'tr[data-run="{started["runId"]}"] .badge')).to_have_text("completed")
    page.select_option("#status-filter", "failed")
    page.click("text=Apply")
    expect(page.locator("table.runs tbody tr[data-run]")).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run", demo["failed"])


def test_run_page_shows_its_steps_with_the_pods_that_ran_them(fleet: Fleet, demo: dict[str, str], page: Page, shots: Path) -> None:
    page.goto(f"{fleet.runtime_url}/ui/runs/{demo['parallel']}")
    nodes = page.locator(".graph .node")
    expect(nodes).to_have_count(3)
    pods = instance_ids(fleet)
    texts = nodes.all_inner_texts()
    assert all(any(f"pod {pod}" in text for pod in pods) for text in texts), texts
    assert all("attempt 1" in text and "unknown" not in text for text in texts), texts
    nodes.first.click()
    details = page.locator("#step-details")
    expect(details).to_contain_text("blob_id")
    expect(details.locator(".pod")).to_have_text(next(pod for pod in pods if pod in texts[0]))
    expect(details).to_contain_text(re.compile(r"\d+ callbacks? \(blobs/put ×\d+.*\), pinned to pod "))  # noqa: RUF001 - the page writes a multiplication sign
    expect(page.locator(".timeline .lane")).to_have_count(3)
    screenshot(page, shots / "ui-run.png")
    page.click(".journal summary")
    expect(page.locator(".journal li").filter(has_text="step_succeeded")).to_have_count(3)
    assert all(any(f"pod {pod}" in text for pod in pods) for text in page.locator(".journal li").filter(has_text="step_succeeded").all_inner_texts())


def test_a_failed_step_shows_its_error(fleet: Fleet, demo: dict[str, str], page: Page) -> None:
    page.goto(f"{fleet.runtime_url}/ui/runs/{demo['failed']}")
    expect(page.locator('.node[data-step="fibonacci"]')).to_have_class("node status-failed")
    page.fill("#item-index", "1")
    page.press("#item-index", "Enter")
    page.locator('.node[data-step="fibonacci"]').click()
    expect(page.locator("#step-details .error-box")).to_contain_text("value must be at most 30")
    expect(page.locator(".timeline .bar.status-failed")).to_have_count(2)  # fibonacci, and square that reads it


def test_retries_are_marked_on_the_step_and_its_timeline(fleet: Fleet, page: Page) -> None:
    retried = {
        "schema": "https://stepflow.org/schemas/v1/flow.json",
        "name": "retried",
        "steps": [{"id": "too_big", "component": "/python/fibonacci", "input": {"value": 31}, "onError": {"action": "retry", "maxAttempts": 3}}],
        "output": {"$step": "too_big"},
    }
    run = api(fleet, "POST", "/runs", json={"flow": retried, "input": [{}]})
    page.goto(f"{fleet.runtime_url}/ui/runs/{run['runId']}")
    expect(page.locator('.node[data-step="too_big"]')).to_contain_text("attempt 3")
    expect(page.locator(".timeline .tick")).to_have_count(2)
    page.locator('.node[data-step="too_big"]').click()
    expect(page.locator("#step-details")).to_contain_text("attempt 3 after")


def test_sub_runs_are_linked_both_ways(fleet: Fleet, page: Page) -> None:
    child_flow = api(fleet, "POST", "/flows", json={"flow": flow_file("simple-test-workflow")})["flowId"]
    parent_flow = {
        "schema": "https://stepflow.org/schemas/v1/flow.json",
        "name": "parent",
        "steps": [{"id": "child", "component": "/eval", "input": {"flow_id": child_flow, "input": {"value": 2}}}],
        "output": {"$step": "child"},
    }
    run = api(fleet, "POST", "/runs", json={"flow": parent_flow, "input": [{}]})
    page.goto(f"{fleet.runtime_url}/ui/runs/{run['runId']}")
    page.locator('.node[data-step="child"]').click()
    expect(page.locator("#step-details a")).to_have_count(1)
    page.locator(".sub-runs a").click()
    expect(page.locator(".run-head")).to_contain_text("simple-test-workflow")
    page.click("text=" + run["runId"])
    expect(page.locator(".run-head h1")).to_contain_text(run["runId"])


def test_the_page_follows_a_live_run_to_its_end(fleet: Fleet, page: Page) -> None:
    slow = {
        "schema": "https://stepflow.org/schemas/v1/flow.json",
        "name": "slow",
        "steps": [{"id": "work", "component": "/python/compute_intensive_task", "input": {"value": {"$input": "value"}, "iterations": 1_500_000}}],
        "output": {"$step": "work"},
    }
    started = api(fleet, "POST", "/runs", json={"flow": slow, "input": [{"value": n} for n in range(6)], "maxConcurrency": 1, "wait": False})
    page.goto(f"{fleet.runtime_url}/ui/runs/{started['runId']}")
    expect(page.locator("#run-status .badge")).to_have_text("running")
    expect(page.locator("#live")).to_have_text("following the run live")
    expect(page.locator("#run-status .badge")).to_have_text("completed", timeout=30_000)
    expect(page.locator(".timeline .bar.status-completed")).to_have_count(6)


def test_flows_page_lists_stored_flows_and_starts_a_run(fleet: Fleet, demo: dict[str, str], page: Page) -> None:
    page.goto(f"{fleet.runtime_url}/ui/flows")
    page.click("text=simple-test-workflow")
    expect(page.locator(".graph .node")).to_have_count(3)
    page.fill("#run-input", '{"value": 7}')
    page.click("text=Start run")
    page.wait_for_url("**/ui/runs/*")
    expect(page.locator("#run-status .badge")).to_have_text("completed")
    page.goto(page.url.replace("/ui/runs/", "/api/v1/runs/") + "/items")
    assert json.loads(page.inner_text("body"))["items"][0]["result"]["result"]["sum"] == 7 + 14.0**2


def test_two_hundred_steps_render_without_freezing_and_by_keyboard(fleet: Fleet, demo: dict[str, str], page: Page) -> None:
    started = time.monotonic()
    page.goto(f"{fleet.runtime_url}/ui/runs/{demo['wide']}")
    expect(page.locator(".graph .node")).to_have_count(WIDE_STEPS)
    expect(page.locator(".timeline .lane")).to_have_count(WIDE_STEPS)
    elapsed = time.monotonic() - started
    tasks = long_tasks(page)
    print(f"\n200-step run page: {elapsed:.2f} s to render, long tasks {sorted(tasks, reverse=True)[:5]} ms")
    assert elapsed < RENDER_SECONDS and max(tasks, default=0) < LONGEST_TASK_MS, (elapsed, tasks)
    page.locator(".graph .node").first.focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#step-details h2")).to_contain_text("s1")


def test_pages_are_readable_on_a_narrow_window(fleet: Fleet, demo: dict[str, str], browser: Browser) -> None:
    with page_of(browser, NARROW) as page:
        for path in ("/ui/", f"/ui/runs/{demo['failed']}", "/ui/fleet"):
            page.goto(fleet.runtime_url + path)
            expect(page.locator("main h1")).to_be_visible()
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{path} is {overflow} px wider than a {NARROW['width']} px window"


# -- a runtime with a token and 10,000 runs ------------------------------------------------


EMPTY_FLOW = {"schema": "https://stepflow.org/schemas/v1/flow.json", "name": "stored", "steps": [], "output": {"$input": "$"}}


def start_runs(address: str, port: int, count: int, connections: int = 4) -> None:
    """``count`` runs of a flow without steps, as pipelined requests on a few connections: a client making
    them one by one would take ten times as long as the runtime does."""
    body = json.dumps({"flow": EMPTY_FLOW, "input": [{}], "wait": False}).encode()
    head = f"POST /api/v1/runs HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
    request = head.encode() + body

    def send(share: int) -> None:
        with socket.create_connection((address, port), timeout=30) as connection:
            connection.sendall(request * share)
            answers = b""
            while answers.count(b"HTTP/1.1 202") < share:
                chunk = connection.recv(1 << 20)
                assert chunk, f"the runtime closed the connection after {answers.count(b'HTTP/1.1 ')} answers: {answers[-300:]!r}"
                answers += chunk

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, [count // connections] * connections))


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("guarded")
    config = where / "runtime.yml"
    config.write_text(remote_plugin_config(f"http://{NO_PROXY}"))  # its runs have no steps: the plugin is only there to be shown unreachable
    runtime, _ = start_runtime(config, GUARDED, where, 7895, env={"STEPFLOW_API_TOKEN": TOKEN})
    try:
        start_runs(GUARDED, 7895, STORED_RUNS)
        url = f"http://{GUARDED}:7895"
        running: dict[str, str | int] = {"status": "running", "limit": 1}
        wait_until(
            lambda: not httpx.get(f"{url}/api/v1/runs", params=running, headers={"Authorization": f"Bearer {TOKEN}"}).json()["runs"],
            f"all {STORED_RUNS} runs finished",
            20,
        )
        yield url
    finally:
        runtime.stop()


def test_with_a_token_the_page_asks_for_it_once(guarded: str, page: Page) -> None:
    assert httpx.get(f"{guarded}/ui/static/app.js").status_code == 200, "the page's shell holds no data: served without the token"
    assert [httpx.get(f"{guarded}/api/v1/{path}").status_code for path in ("runs", "fleet", "flows")] == [401] * 3
    page.goto(f"{guarded}/ui/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("table.runs tbody tr[data-run]")).to_have_count(0)
    page.fill("#token-input", "wrong")
    page.press("#token-input", "Enter")
    expect(page.locator("#token-problem")).to_be_visible()
    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    expect(page.locator("table.runs tbody tr[data-run]").first).to_be_visible()
    page.goto(f"{guarded}/ui/fleet")
    expect(page.locator("main h1")).to_have_text("Fleet")
    expect(page.locator(".card .problem")).to_contain_text("Not reachable: ConnectError")
    expect(dialog).to_be_hidden()


def test_a_list_of_ten_thousand_runs_renders_and_scrolls_without_freezing(guarded: str, page: Page) -> None:
    page.goto(f"{guarded}/ui/")
    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    started = time.monotonic()
    page.goto(f"{guarded}/ui/?limit={STORED_RUNS}")
    expect(page.locator("#main")).to_have_attribute("data-rows", str(STORED_RUNS), timeout=20_000)
    elapsed = time.monotonic() - started
    page.mouse.wheel(0, 36 * STORED_RUNS)
    oldest = httpx.get(f"{guarded}/api/v1/runs", params={"offset": STORED_RUNS - 1, "limit": 1}, headers={"Authorization": f"Bearer {TOKEN}"}).json()["runs"][0]
    expect(page.locator(f'tr[data-run="{oldest["runId"]}"]')).to_be_visible()
    tasks = long_tasks(page)
    print(
        f"\n10,000-run list: {elapsed:.2f} s to render, rendering took {page.get_attribute('#main', 'data-render-ms')} ms, long tasks {sorted(tasks, reverse=True)[:5]} ms"
    )
    assert elapsed < RENDER_SECONDS and max(tasks, default=0) < LONGEST_TASK_MS, (elapsed, tasks)
    assert page.locator("table.runs tbody tr[data-run]").count() < 200, "every row is in the document"


# -- last: it kills a pod --------------------------------------------------------------------


def test_fleet_page_shows_three_pods_and_their_states_change_when_one_is_killed(fleet: Fleet, demo: dict[str, str], page: Page, shots: Path) -> None:
    page.goto(f"{fleet.runtime_url}/ui/fleet")
    pods = page.locator("table.pods tbody tr")
    expect(pods).to_have_count(3)
    expect(page.locator('table.pods tr[data-state="active"]')).to_have_count(3)
    ids = instance_ids(fleet)
    assert set(pods.evaluate_all("rows => rows.map(row => row.dataset.instance)")) == ids
    executions = [int(text.split()[0]) for text in pods.locator("td:last-child").all_inner_texts()]
    assert all(count > 0 for count in executions), f"the demo's steps ran on every pod: {executions}"
    screenshot(page, shots / "ui-fleet.png")
    killed = httpx.get(f"http://{PODS[0]}:8080/health").json()["instanceId"]
    fleet.pods[PODS[0]].kill()
    expect(page.locator(f'table.pods tr[data-instance="{killed}"]')).to_have_attribute("data-state", "gone", timeout=10_000)
    expect(page.locator('table.pods tr[data-state="active"]')).to_have_count(2)
