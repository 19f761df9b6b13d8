"""A supervisor in a real browser: opens the dashboard, filters it, and sees it update by itself after a
new response arrives."""
import re
from datetime import date

import pytest

from tests.conftest import PASSWORD
from tests.progress_data import cell, make_round, mixed_run, respond

pytestmark = pytest.mark.app_config(DASHBOARD_POLL_SECONDS=0.5)


def test_dashboard_filters_and_updates_live(app, session, make_user, live_server, browser, artifacts):
    from playwright.sync_api import expect

    rnd = make_round(session)
    mixed_run(session, rnd)
    session.commit()
    user = make_user("supervisor")
    stc = cell(session, rnd, "CC-CH", "DLO")

    page = browser.new_page(locale="vi-VN")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/staff/login")
    page.fill("#username", user.username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server}/staff/progress/{rnd.code}")
    expect(page.locator("h1")).to_contain_text("Tiến độ khảo sát")

    page.select_option("#f-kind", "district")  # applies on change
    page.wait_for_url(re.compile(r"kind=district"))
    page.select_option("#f-channel", "online")
    page.wait_for_url(re.compile(r"channel=online"))
    rows = page.locator("#progress-table tbody tr")
    expect(rows).to_have_count(6)  # CC-CH and LĐ-CP for 3 districts
    names = rows.locator("th").all_inner_texts()
    assert [n.splitlines()[0] for n in names[::2]] == ["Duy Xuyên", "Đại Lộc", "Tam Kỳ"]

    verified = page.locator(f"[data-cell='{stc.id}'][data-figure='verified']")
    expect(verified).to_have_text("0")
    first_update = page.locator("#updated").inner_text()
    page.screenshot(path=str(artifacts / "before.png"), full_page=True)

    respond(session, stc, day=date(2025, 10, 9))  # a new online response arrives
    session.commit()

    expect(verified).to_have_text("1", timeout=10_000)
    expect(page.locator(f"[data-cell='{stc.id}'][data-figure='shortfall']")).to_have_text("4")
    expect(page.locator("[data-total='kind:district'][data-figure='verified']")).to_have_text("3")
    expect(page.locator("#last-response")).to_have_text("09/10/2025")
    expect(page.locator("#updated")).not_to_have_text(first_update, timeout=5_000)
    page.screenshot(path=str(artifacts / "after.png"), full_page=True)
    assert not errors, errors
    page.close()
