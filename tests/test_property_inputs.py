"""Property: no input gives a 500. Hypothesis sends generated form data to every POST route and generated
query strings to every GET route of the URL map, as a role the access table lets through, on a loaded round
with codes, sheets and accounts. Field names come from the page's own form (when the URL also answers GET)
and from every name the views and services read; values mix odd strings (NUL, "²", huge numbers, long
text, dates that do not exist) with plausible ones.

Runs with the derandomized profile of tests/conftest.py, so CI sees the same examples every time.
"""
from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests import test_access_control as access_control
from tests.conftest import PASSWORD
from tests.test_access_control import ACCESS, _url

SOURCE = Path(__file__).resolve().parent.parent / "survey_service"
#: Routes whose only effect does not depend on input, or that would end the staff session mid-run.
SKIP = {("auth.logout", "POST"), ("static", "GET")}
EXAMPLES = 5
#: The access-control tests' fixture: a round open today with a code, a batch, a sheet and staff accounts.
world = access_control.world

ODD = ["", " ", "0", "-1", "1", "3", "K", "k", "-", "²", "١٢", "1e9", "99999999999999999999", "NaN", "on", "all",
       "submit", "save", "\x00", "a\x00b", "%00", "é", "Đ", "e\u0301", "\u202e", "<script>alert(1)</script>",
       "' OR 1=1 --", "=HYPERLINK(\"x\")", "31/02/2026", "2026-02-30", "01/01/0001", "9999-12-31", "QNA-2023",
       "SNV", "CC-CT", "LĐ-CP", "LĐH-CH|SNV", "department", "paper", "online", "name", "a" * 3000]


def _source_names() -> set[str]:
    """Every request field name the views and services read, and every WTForms field."""
    names = set()
    for path in list((SOURCE / "web").glob("*.py")) + list((SOURCE / "services").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'\.get(?:list)?\(\s*"([A-Za-z_][\w-]*)"', text))
        names |= set(re.findall(r"^\s+(\w+) = \w*Field\(", text, re.M))
    return names


NAMES = sorted(_source_names())
values = st.one_of(st.sampled_from(ODD), st.text(max_size=40), st.integers(-10**6, 10**22).map(str))


def _fields(names: list[str]):
    keys = st.one_of(st.sampled_from(names), st.text(min_size=1, max_size=12))
    return st.dictionaries(keys, st.one_of(values, st.lists(values, min_size=2, max_size=3)), max_size=8)


def _page_names(client, url: str) -> list[str]:
    """The input names of the forms on the page at ``url`` (the form a browser would post)."""
    page = client.get(url)
    if page.status_code != 200 or not page.mimetype == "text/html":
        return []
    return sorted(set(re.findall(r'name="([^"]+)"', page.get_data(as_text=True))) - {"csrf_token"})


def _clients(app, world):
    anonymous, admin = app.test_client(), app.test_client()
    assert admin.post("/staff/login", data={"username": world["accounts"]["admin"].username,
                                            "password": PASSWORD}).status_code == 302
    return anonymous, admin, {"Authorization": f"Bearer {world['tokens']['admin']}"}


def _routes(app, method: str):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint in ("admin.round_close",), r.rule)):
        if method in rule.methods and (rule.endpoint, method) not in SKIP:
            yield rule


def test_no_form_post_answers_500(app, world):
    anonymous, admin, _ = _clients(app, world)
    for rule in _routes(app, "POST"):
        client = admin if "admin" in ACCESS[(rule.endpoint, "POST")] else anonymous
        url = _url(rule.endpoint, rule, world)
        names = sorted(set(NAMES) | set(_page_names(client, url) if "GET" in rule.methods else []))

        @settings(max_examples=EXAMPLES)
        @given(data=_fields(names))
        def post(data):
            response = client.post(url, data=data)
            assert response.status_code < 500, f"POST {url} {data!r}: {response.status_code}"

        post()


def test_no_query_string_answers_500(app, world):
    anonymous, admin, api_headers = _clients(app, world)
    for rule in _routes(app, "GET"):
        client = admin if "admin" in ACCESS[(rule.endpoint, "GET")] else anonymous
        headers = api_headers if rule.endpoint.startswith("api.") else {}
        url = _url(rule.endpoint, rule, world)

        @settings(max_examples=EXAMPLES)
        @given(query=_fields(NAMES))
        def get(query):
            response = client.get(url, query_string=query, headers=headers)
            assert response.status_code < 500, f"GET {url} {query!r}: {response.status_code}"

        get()
