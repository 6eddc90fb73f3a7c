"""The live view keeps telling the truth when parts fail: a stopped gate shows 离线, and the
stream survives a central restart with nothing lost and nothing shown twice."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import create_engine, select

from central.store.tables import events
from tests.integration.console.conftest import login
from tests.integration.console.stack import GATE, ConsoleStack, wait_for


def feed_ids(page: Page) -> list[int]:
    ids = page.eval_on_selector_all(
        "#feed [data-testid=event-row]", "rows => rows.map(r => Number(r.dataset.eventId))"
    )
    return [int(i) for i in ids]


def stored_ids(stack: ConsoleStack) -> set[int]:
    engine = create_engine(stack.db_url)
    try:
        with engine.connect() as conn:
            return {int(r.id) for r in conn.execute(select(events.c.id))}
    finally:
        engine.dispose()


def test_stream_survives_a_central_restart_without_gaps_or_duplicates(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack)
    state = page.locator("[data-testid=stream-state]")
    expect(state).to_have_attribute("data-state", "live")
    stack.journal(5)
    wait_for(lambda: len(feed_ids(page)) >= len(stored_ids(stack)) and len(stored_ids(stack)) >= 5,
             10, "the first events in the feed")  # fmt: skip
    stack.central.stop()  # type: ignore[union-attr]
    expect(state).to_have_attribute("data-state", "reconnecting")
    # Keep this tab off the stream until central has stored what the gate journalled meanwhile,
    # so those events can only reach it through the Last-Event-ID replay.
    stream = "**/api/v1/events/stream*"
    page.route(stream, lambda route: route.abort())
    stack.journal(7)
    stack.start_central()
    wait_for(lambda: len(stored_ids(stack)) >= 12, 20, "central to store the gate's backlog")
    assert len(feed_ids(page)) < len(stored_ids(stack))
    page.unroute(stream)
    expect(state).to_have_attribute("data-state", "live", timeout=15000)
    wait_for(lambda: set(feed_ids(page)) >= stored_ids(stack), 10, "every stored event in the feed")
    ids = feed_ids(page)
    assert len(ids) == len(set(ids)), "an event was shown twice"
    assert set(ids) == stored_ids(stack)
    assert ids == sorted(ids, reverse=True), "newest first"
    page.context.close()


def test_a_stopped_gate_agent_shows_offline_on_its_tile(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack)
    tile = page.locator(f"[data-testid=gate-tile][data-gate={GATE}]")
    expect(tile).to_have_attribute("data-online", "true")
    expect(tile).to_contain_text("在线")
    stack.agent.stop()  # type: ignore[union-attr]
    expect(tile).to_have_attribute("data-online", "false", timeout=10000)
    expect(tile).to_contain_text("离线")  # in words, not only in red
    stack.start_agent()
    expect(tile).to_have_attribute("data-online", "true", timeout=10000)
    page.context.close()
