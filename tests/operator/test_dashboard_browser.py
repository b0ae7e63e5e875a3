"""The dashboard in headless Chromium (Debian's package, driven by Playwright; never `playwright install`):
log in with a key, submit a job from the form, watch it reach `succeeded`, open its report and check that
the plots render (a screenshot, and every plot <img> decoded with naturalWidth > 0)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import FAST_METHOD, FORGET, HOLDOUT, POLICY, OperatorStack, jsonl

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' brings playwright")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("chromium is missing: scripts/test-services.sh installs it (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists()
                                              else shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_login_submit_watch_and_report(stack: OperatorStack, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors fail the test; refused requests (the wrong key's 401, a report.html this server may not
    # have yet) are logged by the browser as "Failed to load resource" and are part of the scenario.
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.set_default_timeout(30_000)

    # Logging in with a wrong key is refused; the real one is kept in sessionStorage only.
    page.goto(f"{stack.url}/ui")
    page.fill("#login-key", "grin_000000000000_wrong")
    page.click("#login-submit")
    page.wait_for_selector("#flash:has-text('not valid')")
    page.fill("#login-key", stack.key)
    page.click("#login-submit")
    page.wait_for_selector("#view-jobs:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('grin.apiKey')") == stack.key
    assert page.evaluate("document.cookie") == ""

    # Models, with their lineage.
    page.click("a[data-nav=models]")
    page.click(f"tr[data-model='{stack.model_id}'] a")
    page.wait_for_selector("#lineage li[data-version='1']")

    # Submit a job from the form.
    page.click("a[data-nav=submit]")
    page.wait_for_selector(f"#submit-model option[value='{stack.model_id}']", state="attached")
    page.select_option("#submit-model", stack.model_id)
    page.select_option("#submit-kind", "qa")
    page.fill("#submit-forget", jsonl(FORGET))
    page.fill("#submit-holdout", jsonl(HOLDOUT))
    page.select_option("#submit-retain", stack.dataset_id)
    page.fill("#submit-subject", "browser-test")
    page.click("#view-submit details summary")
    page.fill("#submit-method", json.dumps(FAST_METHOD))
    page.fill("#submit-evaluation", json.dumps(POLICY))
    page.click("#submit-button")
    page.wait_for_url("**/ui#/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]

    # Live status: the stages advance and the job reaches `succeeded` without a reload.
    page.wait_for_selector("#job-stages li.current, #job-status:text('succeeded')", timeout=60_000)
    page.wait_for_selector("#job-status:text('succeeded')", timeout=150_000)
    assert page.inner_text("#job-progress-text") == "100%"
    assert page.locator("#events li").count() > 3

    # The report: verdict, metrics and the plots, each a decoded image.
    page.wait_for_selector("#report:not([hidden]) #plots img", timeout=30_000)
    assert page.inner_text("#verdict").startswith("Verdict: ")
    images = page.locator("#plots img")
    assert images.count() >= 2
    page.wait_for_function("[...document.querySelectorAll('#plots img')].every(i => i.complete)")
    widths = page.eval_on_selector_all("#plots img", "imgs => imgs.map(i => i.naturalWidth)")
    assert all(width > 0 for width in widths), widths
    shot = tmp_path / f"report-{job_id}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000  # a page with plots, not a blank one

    # The job list shows it; the approve/reject buttons are only for jobs awaiting approval.
    assert page.locator("#approval").is_hidden()
    page.click("a[data-nav=jobs]")
    page.wait_for_selector(f"tr[data-job='{job_id}'] .badge.succeeded")

    # The new version appears in the model's lineage, as a child of v1 made by this job.
    page.goto(f"{stack.url}/ui#/models/{stack.model_id}")
    page.wait_for_selector(f"#lineage li[data-version='1'] li a[href='#/jobs/{job_id}']")

    page.click("#logout")
    page.wait_for_selector("#view-login:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('grin.apiKey')") is None
    assert not errors, errors
