"""Import directions of the design: analysis is a leaf; services never touch the request.

The module lists are checked when the file is collected: a folder that moved or emptied fails the run
instead of leaving a test with no parameters, which pytest would only report as skipped.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return imported(path.read_text(encoding="utf-8"), package)


def imported(source: str, package: str) -> set[str]:
    """Every module and name ``source`` imports, relative imports resolved against ``package``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:
                parts = package.split(".")
                module = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules(folder: str) -> list[Path]:
    found = sorted((REPO / folder).rglob("*.py"))
    assert found, f"{folder}/ has no modules: the import rules below would check nothing"
    return found


ANALYSIS = modules("analysis")
SERVICES = modules("survey_service/services")
QUESTIONNAIRES = modules("survey_service/questionnaires")
LOWER_LAYERS = [REPO / "survey_service/models.py", *QUESTIONNAIRES]


def test_relative_imports_are_resolved():
    """A relative import must not slip past the rules below."""
    assert imported("from ..services import portal\nfrom . import types\nfrom .rounds import x\n",
                    "survey_service.questionnaires") == {
        "survey_service.services", "survey_service.services.portal", "survey_service.questionnaires",
        "survey_service.questionnaires.types", "survey_service.questionnaires.rounds",
        "survey_service.questionnaires.rounds.x"}
    assert module_name(REPO / "survey_service/questionnaires/__init__.py") == "survey_service.questionnaires"
    assert "survey_service.questionnaires.readers" in imports_of(REPO / "survey_service/questionnaires/forms.py")


def test_the_questionnaires_package_is_there():
    assert len(QUESTIONNAIRES) >= 6, "survey_service/questionnaires/ has lost its modules"


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: str(p.relative_to(REPO)))
def test_analysis_imports_nothing_of_the_service(path):
    forbidden = [n for n in imports_of(path)
                 if n.split(".")[0] in {"flask", "flask_wtf", "flask_login", "sqlalchemy", "survey_service"}]
    assert not forbidden, f"{path.name} imports {forbidden}"


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: str(p.relative_to(REPO)))
def test_services_do_not_touch_the_request(path):
    bad = {"flask.request", "flask.g", "flask.session", "flask.url_for", "flask.flash", "flask.current_app",
           "flask_login.current_user"}
    found = imports_of(path) & bad
    assert not found, f"{path.name} imports {sorted(found)}"
    assert "survey_service.web" not in {n.rsplit(".", 1)[0] for n in imports_of(path)} | imports_of(path)


@pytest.mark.parametrize("path", LOWER_LAYERS, ids=lambda p: str(p.relative_to(REPO)))
def test_models_and_questionnaires_do_not_import_upper_layers(path):
    upper = ("survey_service.services", "survey_service.web", "flask")
    if "questionnaires" in path.parts:  # the data layer reads files only: no database, no statistics
        upper += ("survey_service.models", "survey_service.db", "sqlalchemy", "analysis")
    found = {n for n in imports_of(path) if n.startswith(upper)}
    assert not found, f"{path.relative_to(REPO)} imports {sorted(found)}"


def module_level_imports(path: Path) -> set[str]:
    """What a module imports when it is loaded (imports inside functions run later and cannot cycle)."""
    source = ast.parse(path.read_text(encoding="utf-8"))
    top = ast.Module(body=[n for n in source.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    return imported(ast.unparse(top), "survey_service.services")


def test_services_load_without_an_import_cycle():
    """A cycle between services loads or fails depending on which module a caller imports first."""
    prefix = "survey_service.services."
    names = {module_name(p) for p in SERVICES}
    graph = {module_name(p): {n for n in module_level_imports(p) if n in names and n != module_name(p)}
             for p in SERVICES}
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " → ".join(n.removeprefix(prefix) for n in cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
