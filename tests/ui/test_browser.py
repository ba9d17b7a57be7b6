"""The web UI in a real browser (Debian's chromium through Playwright): upload a folder,
train, watch the run, open it, see what it got wrong, classify a text, delete; and the page
under a stage path.
Screenshots land in tests/ui/artifacts/ (git-ignored)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from functions.core.config import Settings
from tests.conftest import LiveApi, _live_api
from tests.support import (
    DATA_BUCKET,
    TICKETS,
    TOPICS,
    keyword_tree,
    list_keys,
    mislabelled_tree,
    multi_label_tree,
    pdf_bytes,
    upload_tree,
)

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "make test installs Debian's chromium (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


expect.set_options(timeout=20_000)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _training_form(page: Page, api: LiveApi, dataset: str, labels: int, experiment: str
                   ) -> None:  # fmt: skip
    """The page with the training form filled: the dataset (its label folders shown), the
    experiment and the cheap kind."""
    page.goto(f"{api.url}/")
    page.fill("#dataset", dataset)
    page.dispatch_event("#dataset", "change")
    expect(page.locator('#labels input[name="label"]')).to_have_count(labels)
    page.fill("#experiment", experiment)
    page.select_option("#mode", "tfidf")


def test_upload_train_inspect_predict_and_delete_in_the_browser(
    live_api: LiveApi, page: Page, tmp_path: Path, dataset_prefix: str, experiment_name: str,
    s3: Any,
) -> None:  # fmt: skip
    folder = tmp_path / dataset_prefix
    for label, docs in keyword_tree(TOPICS, 8).items():
        (folder / label).mkdir(parents=True)
        for name, body in docs.items():
            (folder / label / name).write_bytes(body)
    page.goto(f"{live_api.url}/")
    expect(page.locator("#health")).to_have_text("connected")
    _shot(page, "01-first-view")
    # upload the folder (presigned PUTs straight to S3), then the labels are suggested
    page.fill("#dataset", dataset_prefix)
    page.set_input_files("#folder", str(folder))
    page.click("#upload")
    expect(page.locator("#upload-status")).to_contain_text("16 uploaded")
    expect(page.locator('#labels input[name="label"]')).to_have_count(2)
    expect(page.locator("#labels")).to_contain_text("sports (8)")
    # an empty document another tool put there: named as unusable before training
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/weather/blank.txt", Body=b"")
    # and a PDF it reads, and an old Word file it cannot: counted by format before training
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/sports/match.pdf",
                  Body=pdf_bytes("the striker scored a goal"))  # fmt: skip
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/weather/old.doc",
                  Body=b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))  # fmt: skip
    # loose files go to the label typed next to them (the second one mislabelled)
    extra = [tmp_path / "late-1.txt", tmp_path / "late-2.txt"]
    extra[0].write_text("the striker scored a goal in the league match")
    extra[1].write_text("heavy rain and a storm in the forecast, then cloud")
    page.set_input_files("#files", [str(p) for p in extra])
    page.fill("#files-label", "sports")
    page.click("#upload")
    expect(page.locator("#upload-status")).to_contain_text("2 uploaded")
    expect(page.locator("#labels")).to_contain_text("sports (11: 10 text, 1 PDF)")
    expect(page.locator("#labels")).to_contain_text("weather (8)")
    unusable = page.locator("#not-usable")
    expect(unusable).to_contain_text("2 documents cannot be used")
    unusable.locator("summary").click()
    expect(unusable).to_contain_text(f"{dataset_prefix}/weather/blank.txt: empty")
    expect(unusable).to_contain_text(f"{dataset_prefix}/weather/old.doc: an Office 97-2003 file")
    # train
    page.fill("#experiment", experiment_name)
    page.select_option("#mode", "tfidf")
    page.click("#train")
    expect(page.locator("#train-status")).to_contain_text("Training started")
    row = page.locator("#runs tbody tr").first
    expect(row).to_contain_text("FINISHED", timeout=120_000)
    expect(row).to_contain_text("yes")
    _shot(page, "02-runs")
    # the run page: metrics, per-class table, evaluation images; which version serves
    row.click()
    expect(page.locator("#run-summary")).to_contain_text("(@champion)")
    expect(page.locator("#per-class tbody tr")).to_have_count(2)
    expect(page.locator("#metrics")).to_contain_text("macro_f1")
    images = page.locator("#images img, #curves img")
    expect(images).to_have_count(2)
    for index in range(2):
        expect(images.nth(index)).to_have_js_property("complete", True)
        assert images.nth(index).evaluate("img => img.naturalWidth") > 100
        # each opens at full size (the page scales a many-label matrix down)
        assert images.nth(index).evaluate("img => img.closest('a').href === img.src")
    # what it got wrong: the mislabelled document, from its confusion-matrix cell
    expect(page.locator("#mistakes-summary")).to_contain_text("documents wrong")
    sports_as_weather = page.locator("#confusion tbody tr", has_text="sports").locator("button")
    expect(sports_as_weather.nth(1)).to_have_attribute("title", "true sports, predicted weather")
    expect(sports_as_weather.nth(1)).not_to_have_text("0")
    sports_as_weather.nth(1).click()
    expect(page.locator("#mistakes-true")).to_have_value("sports")
    listed = page.locator("#mistakes tbody tr", has_text="late-2.txt")
    expect(listed).to_contain_text("weather")
    listed.click()
    expect(page.locator("#document-text")).to_contain_text("heavy rain and a storm")
    _shot(page, "03-what-it-got-wrong")
    # classify a text
    page.fill("#text", "the striker scored a late goal in the league match")
    page.click("#predict")
    # the first prediction loads the model into the API process (imports included)
    expect(page.locator("#prediction")).to_have_text(
        re.compile(r"^sports \(score [01]\.\d{3}\)"), timeout=90_000
    )
    expect(page.locator("#prediction")).to_contain_text("in scope (ood ")
    # each answer says how far out of the model's scope its text is; drift counts them
    # (flagging a label never seen: tests/integration/test_drift.py)
    page.fill("#text", "molecule acid reaction atom bond")
    page.click("#predict")
    expect(page.locator("#prediction")).to_contain_text(re.compile(r"scope \(ood 0\.\d\d"))
    expect(page.locator("#drift-summary")).to_contain_text("2 predictions")
    expect(page.locator("#drift-summary")).to_contain_text("too few to judge")
    expect(page.locator("#drift-plot circle.oos")).to_have_count(1)
    expect(page.locator("#drift-chart")).to_be_visible()
    # a file, sent whole: read as what it is
    (tmp_path / "forecast.pdf").write_bytes(pdf_bytes("sunny then cloud, rain in the forecast"))
    page.set_input_files("#predict-file", str(tmp_path / "forecast.pdf"))
    page.click("#predict")
    expect(page.locator("#prediction")).to_contain_text("forecast.pdf read as PDF")
    expect(page.locator("#prediction")).to_contain_text(re.compile(r"^weather \(score"))
    _shot(page, "04-run-and-prediction")
    # delete the run, confirming the dialog
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-run")
    expect(page.locator("#runs tbody")).to_contain_text("No runs yet.")


def test_a_multi_label_run_lists_what_it_missed_per_label_and_answers_labels(
    live_api: LiveApi, page: Page, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: tickets with one or two labels, and one filed as praise that is not
    tree = multi_label_tree(TICKETS, 36)
    tree["praise"]["odd-one.txt"] = b"refund the invoice, the app crash gave an error"
    upload_tree(s3, DATA_BUCKET, dataset_prefix, tree)
    _training_form(page, live_api, dataset_prefix, 3, experiment_name)
    # when: trained with "Several labels a document"
    page.check("#multi-label")
    page.click("#train")
    expect(page.locator("#train-status")).to_contain_text("Training started")
    row = page.locator("#runs tbody tr").first
    expect(row).to_contain_text("FINISHED", timeout=120_000)
    row.click()
    # then: each label's right, missed and wrongly added documents; praise missed the odd one
    expect(page.locator("#metrics")).to_contain_text("micro_f1")
    expect(page.locator("#confusion thead")).to_contain_text("added wrongly")
    missed = page.locator("#confusion tbody tr", has_text="praise").locator("button").nth(1)
    expect(missed).to_have_attribute("title", "has praise, not given it")
    expect(missed).not_to_have_text("0")
    missed.click()
    listed = page.locator("#mistakes tbody tr", has_text="odd-one.txt")
    expect(listed).to_contain_text("billing")
    listed.click()
    expect(page.locator("#document-text")).to_contain_text("the app crash gave an error")
    _shot(page, "05-multi-label-missed")
    # and: a ticket with two labels (in words the odd one does not use) is answered with both
    page.fill("#text", "my payment freezes with an exception, I was charged for nothing")
    page.click("#predict")
    expect(page.locator("#prediction")).to_contain_text("billing (", timeout=90_000)
    expect(page.locator("#prediction")).to_contain_text("bug (")


def test_a_run_the_bar_refused_is_registered_at_the_users_bar_from_its_page(
    live_api: LiveApi, page: Page, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: a run trained at a bar of 0.99 on documents a quarter of which are mislabelled
    upload_tree(s3, DATA_BUCKET, dataset_prefix, mislabelled_tree(TOPICS, 12, 3))
    _training_form(page, live_api, dataset_prefix, 2, experiment_name)
    page.fill("#min-macro-f1", "0.99")
    page.click("#train")
    row = page.locator("#runs tbody tr").first
    expect(row).to_contain_text("FINISHED", timeout=120_000)
    row.click()
    # then: its page says which bar it missed and offers the highest bar its estimate passes
    expect(page.locator("#run-summary")).to_contain_text("below the bar 0.9900")
    expect(page.locator("#promote-bar-box")).to_be_visible()
    offered = float(page.input_value("#promote-bar"))
    assert 0.5 < offered < 0.99
    # when: made champion at that bar
    page.click("#promote")
    # then: registered and @champion, without training again
    expect(page.locator("#run-summary")).to_contain_text("version 1 is now @champion")
    expect(row).to_contain_text("yes")
    expect(page.locator("#promote-bar-box")).to_be_hidden()


def test_the_page_works_under_an_api_gateway_stage_path(
    page: Page, settings: object, request: pytest.FixtureRequest
) -> None:
    staged: LiveApi = request.getfixturevalue("staged_api")
    page.goto(f"{staged.url}/prod/")
    expect(page.locator("#health")).to_have_text("connected")
    assert page.evaluate("document.baseURI").endswith("/prod/")
    # an address naming an experiment opens it, under the stage path too
    page.goto(f"{staged.url}/prod/#/experiments/no-such-experiment")
    expect(page.locator("#runs tbody")).to_contain_text("not found")


def test_a_queued_run_shows_its_place_and_is_cancelled_from_its_page(
    settings: Settings, s3: Any, page: Page, tmp_path: Path, dataset_prefix: str,
    experiment_name: str,
) -> None:  # fmt: skip
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    one_slot = settings.model_copy(update={"local_max_jobs": 1})
    live = _live_api(one_slot, tmp_path)
    api = next(live)
    try:
        body = {"labels": sorted(TOPICS), "path": dataset_prefix,
                "experiment_name": experiment_name, "mode": "finetune"}  # fmt: skip
        first, queued = (httpx.post(f"{api.url}/custom_classifier/process", json=body,
                                    timeout=60).json()["data"] for _ in range(2))  # fmt: skip
        page.goto(f"{api.url}/")
        # experiments are picked from a list, not typed
        page.select_option("#runs-experiment", experiment_name)
        queued_id = queued["info"]["run_id"]
        row = page.locator(f"#runs tbody tr[data-run-id='{queued_id}']")
        expect(row).to_contain_text("SCHEDULED (#1 in queue)")
        row.click()
        expect(page.locator("#run-summary")).to_contain_text("#1 in the queue")
        # the run page has its own address: Back closes it, Forward and a reload reopen it
        address = f"#/experiments/{experiment_name}/runs/{queued_id}"
        expect(page).to_have_url(re.compile(re.escape(address) + "$"))
        page.go_back()
        expect(page.locator("#run-section")).to_be_hidden()
        page.go_forward()
        expect(page.locator("#run-id")).to_have_text(queued_id)
        page.reload()
        expect(page.locator("#run-summary")).to_contain_text("#1 in the queue")
        expect(page.locator("#runs-experiment")).to_have_value(experiment_name)
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#cancel-run")
        # the answer, then the page refreshed: KILLED and why, no "training…"
        expect(page.locator("#run-summary")).to_contain_text("KILLED · cancelled by an API caller")
        page.reload()
        expect(page.locator("#run-summary")).to_have_text(
            re.compile(r"^KILLED · cancelled by an API caller: cancelled in the web UI$")
        )
        expect(row).to_contain_text("KILLED")
        _shot(page, "04-cancelled-in-queue")
        httpx.post(f"{api.url}/custom_classifier/run/cancel",
                   json={"run_id": first["info"]["run_id"]}, timeout=60)  # fmt: skip
    finally:
        live.close()


def test_label_suggested_documents_by_keyboard_then_retrain_on_them(
    live_api: LiveApi, page: Page, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: a model trained on 16 documents, and a folder of unlabelled ones
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    inbox = {"a.txt": "the match was stopped by rain", "b.txt": "a goal in the storm",
             "c.txt": "league forecast: sunny", "d.txt": "striker under cloud"}  # fmt: skip
    for name, text in inbox.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}-inbox/{name}", Body=text)
    body = {"labels": sorted(TOPICS), "path": dataset_prefix, "experiment_name": experiment_name,
            "mode": "tfidf"}  # fmt: skip
    base = f"{live_api.url}/custom_classifier"
    run_id = httpx.post(f"{base}/process", json=body, timeout=60).json()["data"]["info"]["run_id"]
    # when: its run page is opened by its address, once trained
    page.goto(f"{live_api.url}/#/experiments/{experiment_name}/runs/{run_id}")
    expect(page.locator("#run-summary")).to_contain_text("FINISHED", timeout=120_000)
    page.reload()  # the run page as a user comes back to it
    expect(page.locator("#label-dataset")).to_have_value(f"s3://{DATA_BUCKET}/{dataset_prefix}")
    # nothing asked of this model yet: the drift section says so and draws no empty chart
    expect(page.locator("#drift-summary")).to_have_text("no predictions in this period")
    expect(page.locator("#drift-chart")).to_be_hidden()
    # and three suggestions are asked for in the inbox
    page.fill("#suggest-path", f"{dataset_prefix}-inbox")
    page.fill("#suggest-n", "3")
    page.click("#suggest")
    expect(page.locator("#labeller")).to_be_visible(timeout=120_000)
    expect(page.locator("#labeller-position")).to_contain_text("1 of 3")
    expect(page.locator("#labeller-buttons")).to_contain_text("1 sports")
    _shot(page, "06-labelling")
    # then: keys alone file them (1 sports, 2 weather, s skip)
    page.locator("#labeller-text").click()  # focus off the form fields
    for key, seen in (("1", "2 of 3"), ("2", "3 of 3")):
        page.keyboard.press(key)
        expect(page.locator("#labeller-position")).to_contain_text(seen)
    page.keyboard.press("s")
    expect(page.locator("#suggest-status")).to_contain_text("All 3 seen: 2 labelled.")
    filed = [k for k in list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/")
             if k.rsplit("/", 1)[1] in inbox]  # fmt: skip
    assert len(filed) == 2
    # and a retrain reads the grown dataset (16 + 2 documents)
    page.click("#retrain")
    expect(page.locator("#suggest-status")).to_contain_text("on 18 documents")
