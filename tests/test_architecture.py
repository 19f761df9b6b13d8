"""Import directions of the design: analysis is a leaf; services never touch the request."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules(folder: str):
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("analysis"), ids=lambda p: str(p.relative_to(REPO)))
def test_analysis_imports_nothing_of_the_service(path):
    forbidden = [n for n in imports_of(path)
                 if n.split(".")[0] in {"flask", "flask_wtf", "flask_login", "sqlalchemy", "survey_service"}]
    assert not forbidden, f"{path.name} imports {forbidden}"


@pytest.mark.parametrize("path", modules("survey_service/services"), ids=lambda p: str(p.relative_to(REPO)))
def test_services_do_not_touch_the_request(path):
    bad = {"flask.request", "flask.g", "flask.session", "flask.url_for", "flask.flash", "flask.current_app",
           "flask_login.current_user"}
    found = imports_of(path) & bad
    assert not found, f"{path.name} imports {sorted(found)}"
    assert "survey_service.web" not in {n.rsplit(".", 1)[0] for n in imports_of(path)} | imports_of(path)


LOWER_LAYERS = [REPO / "survey_service/models.py", *modules("survey_service/questionnaires")]


def test_the_questionnaires_package_is_there():
    assert len(LOWER_LAYERS) >= 6, "survey_service/questionnaires/ has lost its modules"


@pytest.mark.parametrize("path", LOWER_LAYERS, ids=lambda p: str(p.relative_to(REPO)))
def test_models_and_questionnaires_do_not_import_upper_layers(path):
    upper = ("survey_service.services", "survey_service.web", "flask")
    if "questionnaires" in path.parts:  # the data layer reads files only: no database, no statistics
        upper += ("survey_service.models", "survey_service.db", "sqlalchemy", "analysis")
    found = {n for n in imports_of(path) if n.startswith(upper)}
    assert not found, f"{path.relative_to(REPO)} imports {sorted(found)}"
