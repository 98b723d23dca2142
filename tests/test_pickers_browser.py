"""The label pickers in real headless Chromium: what a filter finds and in which order,
Enter with no match, the definition box under pointer and keyboard, marks, and the `?`
codebook panel. Screenshots of the labelling view at 1440x900 and 800x900 go to
tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from issueminer.label import rounds
from issueminer.label.webapp.app import Settings
from issueminer.store import FinalLabel, Issue, Prediction
from tests.helpers import ARTIFACTS
from tests.labeling_fixtures import add_issues
from tests.test_webapp_browser import (
    LiveServer,
    link,
    wait_for_issue,
    watch,
)


@pytest.fixture
def round_world(store):
    """Ten issues, four of them in round r1 for alice."""
    add_issues(store, 10)
    with store.session() as session:
        chosen = rounds.create_round(session, "r1", 4, ["alice"], seed=2)
    return store, chosen


@pytest.fixture
def labelling(browser, round_world, taxonomy) -> Iterator[Callable[..., tuple[Page, list]]]:
    """Opens alice's labelling view (in a window of `viewport`): the page and its errors."""
    store, chosen = round_world
    settings = Settings(store, taxonomy, round="r1", annotator="alice")
    with ExitStack() as servers:

        def open_page(viewport: dict[str, int] | None = None) -> tuple[Page, list]:
            url = servers.enter_context(LiveServer(settings))
            page = browser.new_page(viewport=viewport) if viewport else browser.new_page()
            problems = watch(page)
            page.goto(link(url, settings))
            wait_for_issue(page, chosen[0])
            return page, problems

        yield open_page


def options(page: Page, picker: str) -> list[str]:
    return page.locator(f"#{picker}-options li").all_text_contents()


def test_aliases_find_their_category(labelling, taxonomy) -> None:
    assert taxonomy.node("symptom", "out of memory").aliases == ("oom",)
    assert taxonomy.node("symptom", "segmentation fault").aliases == ("segfault",)
    page, problems = labelling()
    page.keyboard.press("/")
    page.keyboard.type("oom")
    assert options(page, "symptom")[0] == (
        "training & evaluation › program failure › out of memory"
    )
    assert page.get_attribute("#symptom-options li.active", "data-why") == "alias: oom"
    page.fill("#symptom-filter", "")
    page.keyboard.type("segfault")
    assert options(page, "symptom")[0].endswith("› segmentation fault")
    page.keyboard.press("Enter")
    assert page.text_content("#symptom-value").endswith("segmentation fault")
    assert problems == []


def test_names_rank_exact_then_prefix_then_word_start_then_substring(labelling) -> None:
    page, problems = labelling()
    page.keyboard.press("x")
    page.keyboard.type("learning rate")
    found = options(page, "fix")
    # a word start beats a hit inside "partition/learning"
    assert found[:2] == ["fix learning rate", "fix batch size/data partition/learning rate"]
    page.fill("#fix-filter", "fix batch size")
    found = options(page, "fix")
    assert found[0] == "fix batch size"  # exact
    assert found[1].startswith("fix batch size/")  # then prefixes
    page.keyboard.press("Escape")
    page.keyboard.press("/")
    page.keyboard.type("hang")
    assert options(page, "symptom")[0].endswith("› hang")  # exact leaf before prefixes
    assert problems == []


def test_enter_with_no_match_leaves_the_field(labelling) -> None:
    page, problems = labelling()
    page.keyboard.press("/")
    page.keyboard.type("zzzqx")
    assert options(page, "symptom") == []
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("no match for “zzzqx”")
    assert page.evaluate("document.activeElement.id") != "symptom-filter"
    page.keyboard.press("1")  # a shortcut again, not typed into the filter
    assert page.is_checked("input[name=issue_type][value=fault]")
    assert page.input_value("#symptom-filter") == ""
    assert problems == []


def test_the_definition_follows_pointer_and_keyboard(labelling) -> None:
    page, problems = labelling()
    page.keyboard.press("/")
    page.keyboard.type("error")
    assert len(options(page, "symptom")) > 3
    first = options(page, "symptom")[0]
    assert page.text_content("#definition").startswith(first)
    hovered = page.locator("#symptom-options li").nth(1)
    hovered.hover()
    name = hovered.text_content()
    assert name != first
    assert page.text_content("#definition").startswith(name + ":")
    assert "active" in hovered.get_attribute("class")
    page.keyboard.press("ArrowDown")  # the keyboard goes on from where the pointer was
    third = page.locator("#symptom-options li").nth(2).text_content()
    assert page.text_content("#definition").startswith(third + ":")
    assert problems == []


def test_a_fix_pattern_picked_with_the_mouse_is_marked_at_once(labelling) -> None:
    page, problems = labelling()
    page.keyboard.press("x")
    item = page.locator("#fix-options li", has_text="fix learning rate").first
    item.scroll_into_view_if_needed()
    item.click()
    expect(page.locator("#fix-options li.chosen")).to_have_text(["fix learning rate"])
    assert page.text_content("#fix-value") == "fix learning rate"
    page.locator("#fix-options li.chosen").click()  # a second click takes it off again
    expect(page.locator("#fix-options li.chosen")).to_have_count(0)
    assert problems == []


def test_fix_patterns_come_in_order_of_use_with_the_chosen_symptom(labelling, round_world) -> None:
    store, chosen = round_world
    with store.session() as session:  # final labels of issues outside the round
        others = [u for u in session.scalars(select(Issue.uid)) if u not in chosen]
        finals = [
            ("out of memory", ["fix memory/core setting"]),
            ("hang", ["use tmux"]),
            ("hang", ["use tmux", "fix timeout setting"]),
            ("hang", ["fix timeout setting"]),
        ]
        for uid, (leaf, fixes) in zip(others, finals, strict=False):
            session.add(
                FinalLabel(issue_uid=uid, issue_type="fault", leaf_symptom=leaf, fix_patterns=fixes)
            )
    page, problems = labelling()
    page.keyboard.press("x")
    # no symptom yet: most used overall first (ties by name), then the file's order
    assert options(page, "fix")[:4] == [
        "fix timeout setting",
        "use tmux",
        "fix memory/core setting",
        "change hardware",
    ]
    page.keyboard.press("Escape")
    page.keyboard.press("/")
    page.keyboard.type("out of memory")
    page.keyboard.press("Enter")
    page.keyboard.press("x")
    assert options(page, "fix")[:3] == [
        "fix memory/core setting",
        "fix timeout setting",
        "use tmux",
    ]
    page.keyboard.type("fix")  # typing keeps the tiers first, use within a tier
    assert options(page, "fix")[:2] == ["fix memory/core setting", "fix timeout setting"]
    assert problems == []


def test_question_mark_opens_the_codebook_entry(labelling) -> None:
    page, problems = labelling()
    page.keyboard.press("/")
    page.keyboard.type("out of memory")
    page.keyboard.press("?")
    panel = page.locator("#codebook")
    expect(panel).to_be_visible()
    assert page.input_value("#symptom-filter") == "out of memory"  # "?" was not typed
    text = panel.text_content()
    assert "GPU 0 runs out of memory because every rank also creates a context on it." in text
    assert "Decision rules" in text and "out of memory vs memory issue." in text
    assert panel.locator("code", has_text="memory issue").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "pickers-codebook.png"))
    page.keyboard.press("Escape")  # closes the panel, the filter keeps its text
    expect(panel).to_be_hidden()
    page.keyboard.press("Escape")
    page.keyboard.press("1")
    page.keyboard.press("?")  # outside a filter: the entry of what the box shows
    expect(panel).to_contain_text("fault")
    expect(panel).to_contain_text("a fix to their code or environment")
    page.keyboard.press("?")
    expect(panel).to_be_hidden()
    assert problems == []


def test_screenshots_keep_the_definition_in_view(labelling, round_world) -> None:
    store, chosen = round_world
    with store.session() as session:  # suggestions push the form further down
        for target, label in (("leaf_symptom", "hang"), ("fix_patterns", "use tmux")):
            session.add(
                Prediction(
                    issue_uid=chosen[0],
                    model_id="m",
                    target=target,
                    label=label,
                    probability=0.7,
                    probabilities={label: 0.7},
                    created_at=datetime(2020, 1, 1),  # before the round: it shows them
                )
            )
    for width, height in ((1440, 900), (800, 900)):
        page, problems = labelling({"width": width, "height": height})
        page.keyboard.press("1")
        page.keyboard.press("x")
        page.keyboard.type("setting")
        hovered = page.locator("#fix-options li").nth(2)
        hovered.hover()
        box = page.locator("#definition").bounding_box()
        assert box is not None and box["height"] > 20
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, box
        assert page.text_content("#definition").startswith(hovered.text_content() + ":")
        # scrolled to the end of the page, Save stays in view (and the definition too)
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        for element in ("#save", "#definition"):
            box = page.locator(element).bounding_box()
            assert box is not None and box["y"] >= 0, (element, box)
            assert box["y"] + box["height"] <= height, (element, box)
        page.screenshot(path=str(ARTIFACTS / f"pickers-{width}x{height}.png"))
        assert problems == []
