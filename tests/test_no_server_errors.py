"""Every page answers bad input with a 4xx, never a 500: each GET route is requested with odd values in its
URL and query string, as each role, on a loaded round."""
import re

import pytest

ODD_VALUES = ["QNA-2023", "khong-co", "0", "-1", "99999999999999999999", "%27%20OR%201%3D1", "Đ%C6%B0", "a" * 300]
ODD_QUERY = "?round=NOPE&form=%00&agency=%27&channel=x&kind=y&sort=z&page=-5&action=%3Cscript%3E&state=zz"


def _urls(app, method="GET", skip=("static",)):
    for rule in app.url_map.iter_rules():
        if method not in rule.methods or rule.endpoint in skip:
            continue
        if not rule.arguments:
            yield rule.rule
            continue
        for value in ODD_VALUES:
            url = rule.rule
            for arg in rule.arguments:
                url = re.sub(rf"<(?:[a-z]+:)?{arg}>", value, url)
            yield url


@pytest.mark.parametrize("role", [None, "admin", "supervisor", "clerk", "analyst"])
def test_no_get_route_answers_500(app, loaded_round, client, make_user, auth, role):
    if role:
        auth.login(make_user(role).username)
    failures = []
    for url in _urls(app):
        for target in (url, url + ODD_QUERY):
            status = client.get(target).status_code
            if status >= 500:
                failures.append(f"{status} {target}")
    assert not failures, failures


ODD_FORMS = [{}, {"code": "x" * 5000, "count": "1e9", "target": "-3", "action": "submit", "division": "%",
                  "opens_on": "31/02/2026", "closes_on": "", "serials": "\x00", "username": "", "password": "",
                  "file": "", "csv": "form,agency\nXX,YY\n"}]


@pytest.mark.parametrize("role", [None, "admin", "clerk"])
def test_no_post_route_answers_500(app, loaded_round, client, make_user, auth, role):
    if role:
        auth.login(make_user(role).username)
    failures = []
    for url in _urls(app, "POST", skip=("static", "auth.logout", "auth.login")):
        for data in ODD_FORMS:
            status = client.post(url, data=data).status_code
            if status >= 500:
                failures.append(f"{status} {url} {sorted(data)}")
    assert not failures, failures


def test_no_api_route_answers_500_with_a_valid_token(app, loaded_round, client, make_user, session):
    from survey_service.services import users

    token = users.issue_api_token(session, make_user("admin"))
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    failures = [f"{status} {target}" for url in _urls(app) if url.startswith("/api/")
                for target in (url, url + ODD_QUERY)
                if (status := client.get(target, headers=headers).status_code) >= 500]
    assert not failures, failures
