"""The API against its own OpenAPI document (schemathesis): for every operation, generated requests, valid
and invalid, with a valid token, never get a 5xx, and every response matches the documented status codes,
content types, headers and schemas. The token's account is an admin's, so every operation is reachable.

The operations are driven as Hypothesis strategies from the schema the app serves, inside one test that
has the usual app fixture (schemathesis' own pytest fixture loader does not support pytest 9)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode

from survey_service.services import users

EXAMPLES = 8


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(app, loaded_round, make_user, session, mode):
    headers = {"Authorization": f"Bearer {users.issue_api_token(session, make_user('admin'))}"}
    session.commit()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    api_routes = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/") and r.endpoint != "api.openapi"]
    assert len(operations) == len(api_routes), "every API route is described in the OpenAPI document"
    for operation in operations:
        @settings(max_examples=EXAMPLES)
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            case.call_and_validate(headers=headers)

        check()
