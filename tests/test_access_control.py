"""Access control read from the URL map: every route and method, requested as every role, is allowed or
refused exactly as the table below says.

The table is the list of who may use what; a route without an entry fails the test with the line to add,
so a new page cannot ship without someone deciding who may open it. Roles: ``anonymous`` (no session),
``respondent`` (a browser that has opened an invitation code), and the four staff roles. API routes are
called with each staff account's bearer token (anonymous and respondents send none).

A refusal is a 401, the login guard's redirect to the staff login page, a 403 from a role guard, or (portal
pages that need an opened code) a redirect to the portal's home page; anything else counts
as access (a 400 for an empty form, a 404 for a missing object, a 409 for a spent sheet are the page's own
answers to the request, given only after the guard let it through). No request may answer 5xx.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from survey_service.services import frames, invitations, sheets, users
from survey_service.web.respond import local_today
from tests.conftest import PASSWORD

ROLES = ("anonymous", "respondent", "clerk", "supervisor", "analyst", "observer", "auditor", "admin")
STAFF_ROLES = ("clerk", "supervisor", "analyst", "observer", "auditor", "admin")
PUBLIC = frozenset(ROLES)
STAFF = frozenset(STAFF_ROLES)
ADMIN = frozenset({"admin"})
CLERK = frozenset({"clerk", "admin"})
SUPERVISOR = frozenset({"supervisor", "admin"})
VIEWERS = frozenset({"supervisor", "analyst", "admin"})  # read-only progress and results
LISTS = frozenset({"supervisor", "observer", "admin"})  # sample lists: drawn by supervisors, checked by observers
OBSERVER = frozenset({"observer"})  # the sign-off is the observer's own, not an admin's
AUDITOR = frozenset({"auditor"})  # phúc tra shows the contact vault: the auditor alone

#: (endpoint, method) -> the roles that may use it. Admins may use every staff page.
ACCESS: dict[tuple[str, str], frozenset[str]] = {
    ("static", "GET"): PUBLIC,
    ("favicon", "GET"): PUBLIC,
    # public portal: anyone holding a code may answer with it
    ("respond.index", "GET"): PUBLIC,
    ("respond.index", "POST"): PUBLIC,
    ("respond.code", "GET"): PUBLIC,
    ("respond.form", "GET"): PUBLIC,
    ("respond.answer", "POST"): PUBLIC,
    ("respond.division", "GET"): PUBLIC,
    ("respond.division", "POST"): PUBLIC,
    ("respond.token", "GET"): PUBLIC,  # a fresh CSRF token for the offline form's resend: no code involved
    ("respond.service_worker", "GET"): PUBLIC,
    # staff sign-in
    ("auth.login", "GET"): PUBLIC,
    ("auth.login", "POST"): PUBLIC,
    ("auth.logout", "POST"): STAFF,
    ("auth.password", "GET"): STAFF,
    ("auth.password", "POST"): STAFF,
    ("staff.home", "GET"): STAFF,
    ("tokens.show", "GET"): STAFF,
    ("tokens.create", "POST"): STAFF,
    ("tokens.revoke", "POST"): STAFF,
    # administration
    ("admin.user_list", "GET"): ADMIN,
    ("admin.user_list", "POST"): ADMIN,
    ("admin.user_active", "POST"): ADMIN,
    ("admin.user_unlock", "POST"): ADMIN,
    ("admin.user_password", "POST"): ADMIN,
    ("admin.user_role", "POST"): ADMIN,
    ("admin.user_token_revoke", "POST"): ADMIN,
    ("admin.audit_log", "GET"): ADMIN,
    ("admin.audit_csv", "GET"): ADMIN,
    ("admin.round_list", "GET"): VIEWERS,
    ("admin.round_schedule", "POST"): SUPERVISOR,
    ("admin.round_close", "POST"): SUPERVISOR,
    # invitation codes
    ("invitations.index", "GET"): SUPERVISOR,
    ("invitations.lookup", "POST"): SUPERVISOR,
    ("invitations.issue", "POST"): SUPERVISOR,
    ("invitations.batch", "GET"): SUPERVISOR,
    ("invitations.batch_csv", "GET"): SUPERVISOR,
    ("invitations.batch_pdf", "GET"): SUPERVISOR,
    ("invitations.revoke", "POST"): SUPERVISOR,
    # progress and quotas
    ("progress.index", "GET"): VIEWERS,
    ("progress.show", "GET"): VIEWERS,
    ("progress.live", "GET"): VIEWERS,
    ("progress.curve", "GET"): VIEWERS,
    ("progress.export_csv", "GET"): VIEWERS,
    ("progress.export_xlsx", "GET"): VIEWERS,
    ("progress.export_plan", "GET"): VIEWERS,
    ("progress.soft_close", "POST"): SUPERVISOR,
    ("progress.plan", "GET"): SUPERVISOR,
    ("progress.plan", "POST"): SUPERVISOR,
    ("progress.apply_recommended", "POST"): SUPERVISOR,
    ("progress.import_plan", "POST"): SUPERVISOR,
    # paper: clerks key, supervisors print and settle
    ("paper.scan", "GET"): CLERK,
    ("paper.scan", "POST"): CLERK,
    ("paper.open_token", "GET"): CLERK,
    ("paper.key", "GET"): CLERK,
    ("paper.key", "POST"): CLERK,
    ("paper.returns", "GET"): CLERK,
    ("paper.returns", "POST"): CLERK,
    ("paper.read", "GET"): CLERK,
    ("paper.read", "POST"): CLERK,
    ("paper.confirm", "GET"): CLERK,
    ("paper.confirm", "POST"): CLERK,
    ("paper.second", "GET"): CLERK,
    ("paper.print_sheets", "GET"): SUPERVISOR,
    ("paper.print_sheets", "POST"): SUPERVISOR,
    ("paper.printed_pdf", "GET"): SUPERVISOR,
    ("paper.ledger", "GET"): SUPERVISOR,
    ("paper.sheet_detail", "GET"): SUPERVISOR,
    ("paper.reprint", "POST"): SUPERVISOR,
    ("paper.verify", "POST"): SUPERVISOR,
    ("paper.reconcile_list", "GET"): SUPERVISOR,
    ("paper.reconcile", "GET"): SUPERVISOR,
    ("paper.reconcile", "POST"): SUPERVISOR,
    ("paper.agreement", "GET"): SUPERVISOR,
    # results
    ("results.index", "GET"): VIEWERS,
    ("results.round_table", "GET"): VIEWERS,
    ("results.agency_page", "GET"): VIEWERS,
    ("results.agency_chart", "GET"): VIEWERS,
    ("results.ranking_chart", "GET"): VIEWERS,
    ("results.download", "GET"): VIEWERS,
    ("results.report_download", "GET"): VIEWERS,
    # preview of the forms as respondents and clerks see them
    ("preview.index", "GET"): VIEWERS,
    ("preview.form", "GET"): VIEWERS,
    ("preview.form", "POST"): VIEWERS,
    ("preview.phone", "GET"): VIEWERS,
    ("preview.sheet", "GET"): VIEWERS,
    # individual responses: browsed and exported by viewers, imported by supervisors
    ("responses.index", "GET"): VIEWERS,
    ("responses.listing", "GET"): VIEWERS,
    ("responses.detail", "GET"): VIEWERS,
    ("responses.answers_csv", "GET"): VIEWERS,
    ("responses.import_file", "GET"): SUPERVISOR,
    ("responses.import_file", "POST"): SUPERVISOR,
    ("responses.import_template", "GET"): SUPERVISOR,
    # reminders to agencies still short of responses
    ("reminders.index", "GET"): SUPERVISOR,
    ("reminders.listing", "GET"): SUPERVISOR,
    ("reminders.print_all", "GET"): SUPERVISOR,
    ("reminders.show", "GET"): SUPERVISOR,
    ("reminders.text", "GET"): SUPERVISOR,
    # sampling frames and sample lists
    ("frames.index", "GET"): LISTS,
    ("frames.import_frame", "POST"): SUPERVISOR,
    ("frames.show", "GET"): LISTS,
    ("frames.sample", "POST"): SUPERVISOR,
    ("frames.export", "GET"): LISTS,
    ("frames.replace", "POST"): SUPERVISOR,
    ("frames.sign_off", "POST"): OBSERVER,
    ("frames.delete_sample", "POST"): SUPERVISOR,
    ("frames.delete", "POST"): SUPERVISOR,
    # phúc tra
    ("phuctra.index", "GET"): AUDITOR,
    ("phuctra.show", "GET"): AUDITOR,
    ("phuctra.contacts", "POST"): AUDITOR,
    ("phuctra.draw", "POST"): AUDITOR,
    ("phuctra.outcome", "POST"): AUDITOR,
    ("phuctra.lift", "POST"): AUDITOR,
    ("phuctra.close", "POST"): AUDITOR,
    # API (bearer token)
    ("api.openapi", "GET"): PUBLIC,
    ("api.round_quotas", "GET"): VIEWERS,
    ("api.round_results", "GET"): VIEWERS,
}

#: Routes whose effect would change what later requests of the same run see; requested after the rest.
LAST = ("admin.round_close", "auth.logout")

#: URL argument name -> its value, from the objects made by the ``world`` fixture.
ARGUMENTS = {
    "code": lambda w: w["code"],
    "round_code": lambda w: w["round"],
    "form_code": lambda w: "CC-CT",
    "batch_id": lambda w: w["batch_id"],
    "cell_id": lambda w: w["cell_id"],
    "user_id": lambda w: w["user_id"],
    "serial": lambda w: w["serial"],
    "token": lambda w: w["token"],
    "agency": lambda w: "SNV",
    "kind": lambda w: "department",
    "fmt": lambda w: "csv",
    "filename": lambda w: "css/app.css",
    "key": lambda w: "SNV",  # the reminder of an agency still short of responses (every one is)
    "uid": lambda w: "0" * 32,  # a response id: the round has none, so a 404 once the guard lets it through
    "frame_id": lambda w: w["frame_id"],
    "investigator": lambda w: "DTV01",  # quarantined nowhere: a 404 once the guard lets it through
}
# ``code`` names a round on staff pages and an invitation code on the portal.
ROUND_CODE_ENDPOINTS = ("admin.", "results.", "api.")

DENIED_MESSAGES = ("không có quyền truy cập trang này", "không được dùng chức năng API này")


def _routes(app):
    """(endpoint, method, rule) for every route of the app, in a stable order."""
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, rule))
    found.sort(key=lambda r: (r[0] in LAST, LAST.index(r[0]) if r[0] in LAST else 0, r[1] != "GET", r[0]))
    return found


def test_every_route_has_an_entry(app):
    missing = [f'    ("{endpoint}", "{method}"): <roles>,    # {method} {rule.rule}'
               for endpoint, method, rule in _routes(app) if (endpoint, method) not in ACCESS]
    assert not missing, (
        "Routes without an entry in ACCESS (tests/test_access_control.py). Add one line per route, with the "
        "roles that may use it (PUBLIC, STAFF, ADMIN, CLERK, SUPERVISOR, VIEWERS or a frozenset of "
        f"{ROLES}):\n" + "\n".join(missing))
    stale = sorted(set(ACCESS) - {(e, m) for e, m, _ in _routes(app)})
    assert not stale, f"Entries in ACCESS for routes that no longer exist; remove them: {stale}"
    unknown = sorted({arg for _, _, rule in _routes(app) for arg in rule.arguments} - set(ARGUMENTS))
    assert not unknown, (f"URL arguments without a value in ARGUMENTS (tests/test_access_control.py): {unknown}; "
                         "add a value that names a real object made by the world fixture.")


@pytest.fixture
def world(app, session, loaded_round, make_user):
    """A round open today with a code, a batch, a printed sheet, a sampling frame and one account per staff
    role."""
    today = local_today()
    loaded_round.opens_on, loaded_round.closes_on = today - timedelta(days=10), today + timedelta(days=30)
    cell = invitations.find_cell(session, loaded_round, "CC-CT", "SNV")
    code = invitations.issue_codes(session, cell, 1, actor="test").codes[0].code
    batch = invitations.issue_codes(session, cell, 2, actor="test")
    plans = sheets.paper_cells(session, loaded_round, form_code="LĐH-CH")
    sheet = sheets.issue_sheets(session, loaded_round, plans[:1], actor="test")[0]
    frame = frames.import_frame(session, loaded_round, "households", b"commune,village,ref\nSNV,T1,H1\n", "f.csv",
                                today=today, actor="test")
    session.commit()
    accounts = {role: make_user(role) for role in STAFF_ROLES}
    tokens = {role: users.issue_api_token(session, user) for role, user in accounts.items()}
    session.commit()
    return {"round": loaded_round.code, "code": code, "batch_id": batch.id, "cell_id": cell.id,
            "user_id": make_user("analyst").id, "serial": sheet.serial, "frame_id": frame.id,
            "token": sheets.sign_sheet_id(app.config["SHEET_SIGNING_KEYS"], sheet.id),
            "accounts": accounts, "tokens": tokens}


def _url(endpoint: str, rule, world) -> str:
    url = rule.rule
    for arg in rule.arguments:
        if arg == "code" and endpoint.startswith(ROUND_CODE_ENDPOINTS):
            value = world["round"]
        else:
            value = ARGUMENTS[arg](world)
        url = re.sub(rf"<(?:[a-z]+(?:\([^)]*\))?:)?{arg}>", str(value), url)
    return url


def _denied(endpoint: str, response) -> bool:
    if response.status_code == 401:
        return True
    location = response.headers.get("Location", "")
    if response.status_code == 302 and "/staff/login?next=" in location:
        return True  # the login guard (a logout also ends on the login page, without ``next``)
    if response.status_code == 303 and endpoint.startswith("respond.") and location in ("/", "http://localhost/"):
        return True  # the respondent guard: this browser has opened no code, back to the home page
    if response.status_code != 403:
        return False
    text = response.get_json().get("message", "") if response.is_json else response.get_data(as_text=True)
    return any(m in text for m in DENIED_MESSAGES)


@pytest.mark.parametrize("role", ROLES)
def test_every_route_allows_exactly_the_roles_in_the_table(app, client, world, role):
    missing = [(e, m) for e, m, _ in _routes(app) if (e, m) not in ACCESS]
    if missing:
        pytest.skip("routes without an entry: see test_every_route_has_an_entry")
    headers = {}
    if role == "respondent":
        assert client.get(f"/c/{world['code']}", follow_redirects=True).status_code == 200
    elif role != "anonymous":
        assert client.post("/staff/login", data={"username": world["accounts"][role].username,
                                                 "password": PASSWORD}).status_code == 302
        headers = {"Authorization": f"Bearer {world['tokens'][role]}"}
    wrong = []
    for endpoint, method, rule in _routes(app):
        url = _url(endpoint, rule, world)
        response = client.open(url, method=method, data={} if method == "POST" else None,
                               headers=headers if endpoint.startswith("api.") else {})
        allowed = role in ACCESS[(endpoint, method)]
        if response.status_code >= 500:
            wrong.append(f"{method} {url}: {response.status_code}")
        elif _denied(endpoint, response) == allowed:
            wrong.append(f"{method} {url} ({endpoint}): expected {'access' if allowed else 'refusal'}, "
                         f"got {response.status_code} {response.headers.get('Location', '')}")
    assert not wrong, f"as {role}:\n" + "\n".join(wrong)
