"""Loading a round into the database: one transaction, idempotent, versions never rewritten."""
import shutil

import pytest
import sqlalchemy as sa
import yaml

from survey_service.models import (
    Agency, AgencyContinuation, AuditEvent, Channel, QuestionnaireVersion, QuotaCell, Response, Round, RoundForm,
)
from survey_service.services import rounds
from tests.conftest import QUESTIONNAIRE_DIR, ROUND_DIR


def count(session, model, *where):
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_real_round_loads(loaded_round, session):
    assert loaded_round.code == "QNA-2023" and loaded_round.province == "Quảng Nam"
    kinds = session.execute(sa.select(Agency.kind, sa.func.count()).group_by(Agency.kind)).all()
    assert dict(kinds) == {"department": 20, "district": 18, "vertical": 5}
    assert loaded_round.kind_labels == {"department": "Sở, ban, ngành", "district": "UBND cấp huyện",
                                        "vertical": "Cơ quan ngành dọc"}
    assert loaded_round.own_staff_forms == ("CC-CT", "CC-ND", "CC-CH")
    assert loaded_round.supervision("LĐ-CP") == {"cells_per": "district", "unit": "phòng chuyên môn",
                                                 "supervisor": "sở quản lý"}
    assert count(session, RoundForm, RoundForm.round_id == loaded_round.id) == 8
    paper = session.execute(
        sa.select(QuotaCell.form_code, sa.func.sum(QuotaCell.target))
        .where(QuotaCell.channel == Channel.PAPER).group_by(QuotaCell.form_code)
    ).all()
    assert dict(paper) == {"HĐ-CT": 30, "LĐH-CH": 40, "LĐS-CT": 36}
    matrix = session.scalar(sa.select(QuotaCell).where(QuotaCell.form_code == "HĐ-CT"))
    assert matrix.agency_id is None and matrix.staff_count is None
    online = session.scalars(sa.select(QuotaCell).where(QuotaCell.channel == Channel.ONLINE)).all()
    assert online and all(cell.staff_count and cell.target <= cell.staff_count for cell in online)


def test_loading_twice_changes_nothing(loaded_round, session):
    before = session.scalar(sa.select(sa.func.max(AuditEvent.id)))
    report = rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR)
    assert not report.changed
    session.flush()
    assert session.scalar(sa.select(sa.func.max(AuditEvent.id))) == before


def test_cli_round_load_twice(runner, session):
    first = runner.invoke(args=["round", "load", str(ROUND_DIR)])
    assert first.exit_code == 0 and "Đã nạp đợt" in first.output
    second = runner.invoke(args=["round", "load", str(ROUND_DIR)])
    assert second.exit_code == 0 and "không thay đổi" in second.output
    assert count(session, Round) == 1 and count(session, Agency) == 43


@pytest.fixture
def editable_copy(tmp_path):
    """A copy of questionnaires/ that a test may edit."""
    target = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRE_DIR, target)
    return target


def _add_response(session, rnd, form_code):
    rf = session.get(RoundForm, (rnd.id, form_code))
    cell = session.scalar(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id, QuotaCell.form_code == form_code))
    response = Response(uid="r1", round_id=rnd.id, quota_cell_id=cell.id, form_code=form_code,
                        questionnaire_version_id=rf.questionnaire_version_id, agency_id=cell.agency_id,
                        channel=cell.channel, submitted_on=rnd.opens_on, respondent_key="k1")
    session.add(response)
    session.commit()
    return response


def test_changed_questionnaire_gets_a_new_version(loaded_round, session, editable_copy):
    response = _add_response(session, loaded_round, "CC-CT")
    old_version = session.get(QuestionnaireVersion, response.questionnaire_version_id)
    old_definition = dict(old_version.definition)
    path = editable_copy / "CC-CT.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace('title: "Phiếu', 'title: "Phiếu (sửa đổi)', 1),
                    encoding="utf-8")

    report = rounds.load_round(session, editable_copy / "rounds" / "QNA-2023", editable_copy)
    session.commit()
    assert any("phiếu CC-CT có phiên bản mới" in c for c in report.changes)
    versions = session.scalars(sa.select(QuestionnaireVersion).where(QuestionnaireVersion.form_code == "CC-CT")).all()
    assert len(versions) == 2
    session.expire_all()
    assert session.get(QuestionnaireVersion, old_version.id).definition == old_definition
    assert session.get(Response, response.id).questionnaire_version_id == old_version.id
    current = session.get(RoundForm, (loaded_round.id, "CC-CT")).questionnaire_version_id
    assert current != old_version.id


def _store_with_old_key(session) -> dict[int, dict]:
    """Rewrite the stored definitions as they were written before ``target_kinds`` became ``rated_kinds``."""
    old = {}
    for version in session.scalars(sa.select(QuestionnaireVersion)):
        d = dict(version.definition)
        d["target_kinds"] = d.pop("rated_kinds")
        version.definition = old[version.id] = d
    session.commit()
    return old


def test_a_database_from_before_the_rename_keeps_its_versions(loaded_round, session, editable_copy):
    """Renaming the key makes no unchanged form look changed: no new version, old definitions untouched."""
    old = _store_with_old_key(session)
    response = _add_response(session, loaded_round, "CC-CT")
    answered_on = response.questionnaire_version_id
    assert not rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR).changed
    quotas = editable_copy / "rounds" / "QNA-2023" / "quotas.csv"
    quotas.write_text(quotas.read_text(encoding="utf-8").replace("LĐH-CH,VPUB,paper,2,", "LĐH-CH,VPUB,paper,3,"),
                      encoding="utf-8")

    report = rounds.load_round(session, editable_copy / "rounds" / "QNA-2023", editable_copy)
    session.commit()
    assert report.changes == ["quota LĐH-CH/VPUB: 2 -> 3"]
    session.expire_all()
    assert {v.id: v.definition for v in session.scalars(sa.select(QuestionnaireVersion))} == old
    assert session.get(Response, response.id).questionnaire_version_id == answered_on
    assert {rf.questionnaire_version_id for rf in session.scalars(sa.select(RoundForm))} <= set(old)
    q = rounds.questionnaire_for(session, loaded_round, "LĐH-CH")
    assert q.rated_kinds == ("department", "vertical")
    assert q.version == session.get(RoundForm, (loaded_round.id, "LĐH-CH")).questionnaire_version.version


def test_broken_round_loads_nothing(app, session, editable_copy, runner):
    agencies = editable_copy / "rounds" / "QNA-2023" / "agencies.csv"
    agencies.write_text(agencies.read_text(encoding="utf-8") + "XX,galaxy,Cơ quan lạ\n", encoding="utf-8")
    app.config["QUESTIONNAIRE_DIR"] = str(editable_copy)
    result = runner.invoke(args=["round", "load", str(editable_copy / "rounds" / "QNA-2023")])
    assert result.exit_code == 1
    assert "agencies.csv" in result.output and "galaxy" in result.output
    assert "Không nạp gì" in result.output
    assert count(session, Round) == 0 and count(session, Agency) == 0


def test_broken_questionnaire_loads_nothing(app, session, editable_copy, runner):
    path = editable_copy / "LDH-CH.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("scale: DG4", "scale: DG9", 1), encoding="utf-8")
    app.config["QUESTIONNAIRE_DIR"] = str(editable_copy)
    result = runner.invoke(args=["round", "load", str(editable_copy / "rounds" / "QNA-2023")])
    assert result.exit_code == 1 and "LDH-CH.yaml" in result.output and "DG9" in result.output
    assert count(session, Round) == 0


def test_questionnaires_check_lists_the_forms_of_both_rounds(runner):
    result = runner.invoke(args=["questionnaires", "check"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line[:2] in {"CC", "LĐ", "HĐ"}]
    assert sorted(line.split()[0] for line in lines) == sorted(
        ["CC-CT", "CC-ND", "CC-CH", "LĐ-CP", "LĐX-CH", "HĐ-CT", "LĐH-CH", "LĐS-CT",
         "CC-TP", "CC-NT", "CC-CX", "LĐ-PX", "HĐ-TP", "LĐX-TP", "LĐS-CX"])
    assert "15 phiếu hợp lệ" in result.output


def test_questionnaires_check_fails_on_error(runner, editable_copy):
    path = editable_copy / "CC-ND.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\nsurprise: 1\n", encoding="utf-8")
    result = runner.invoke(args=["questionnaires", "check", "--dir", str(editable_copy)])
    assert result.exit_code == 1 and "CC-ND.yaml" in result.output and "surprise" in result.output


def test_round_state(loaded_round):
    from datetime import timedelta

    assert rounds.round_state(loaded_round, loaded_round.opens_on - timedelta(days=1)) == "not_open"
    assert rounds.round_state(loaded_round, loaded_round.opens_on) == "open"
    assert rounds.round_state(loaded_round, loaded_round.closes_on + timedelta(days=1)) == "closed"


def test_schedule_and_close(loaded_round, session, runner):
    result = runner.invoke(args=["round", "schedule", "QNA-2023", "--opens", "2026-11-01", "--closes", "2026-12-31"])
    assert result.exit_code == 0, result.output
    session.expire_all()
    from datetime import date

    assert rounds.round_state(loaded_round, date(2026, 11, 24)) == "open"
    bad = runner.invoke(args=["round", "schedule", "QNA-2023", "--opens", "2026-12-31", "--closes", "2026-11-01"])
    assert bad.exit_code == 1 and "Ngày mở" in bad.output
    assert runner.invoke(args=["round", "close", "QNA-2023"]).exit_code == 0
    session.expire_all()
    assert rounds.round_state(loaded_round, date(2026, 11, 24)) == "closed"
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.object_type == "round")).all()
    assert "round.schedule" in actions and "round.close" in actions
    assert runner.invoke(args=["round", "schedule", "NOPE", "--opens", "2026-11-01",
                               "--closes", "2026-12-31"]).exit_code == 1
    for lax in ("20261101", "2026-11-1", " 2026-11-01", "2026-11-01\xa0", "٢٠٢٦-١١-٠١"):
        refused = runner.invoke(args=["round", "schedule", "QNA-2023", "--opens", lax, "--closes",
                                      "2027-01-31"])
        assert refused.exit_code == 2 and "không đúng dạng YYYY-MM-DD" in refused.output, lax
        assert "Traceback" not in refused.output
    session.expire_all()
    assert loaded_round.closes_on == date(2026, 12, 31)


def test_demo_setup_migrates_loads_and_opens_the_round(tmp_path):
    """The demo runs on SQLite from an empty database, through the migrations."""
    from datetime import date

    from survey_service import create_app
    from survey_service.db import get_session

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}",
                      "QUESTIONNAIRE_DIR": str(QUESTIONNAIRE_DIR)})
    app.instance_path = str(tmp_path / "instance")
    result = app.test_cli_runner().invoke(args=["demo", "setup"])
    assert result.exit_code == 0, result.output
    assert "giamsat" in result.output and (tmp_path / "instance" / "config.py").exists()
    with app.app_context():
        rnd = rounds.get_round(get_session(), "QNA-2023")
        assert rounds.round_state(rnd, date.today()) == "open"
    again = app.test_cli_runner().invoke(args=["demo", "setup"])
    assert again.exit_code == 0 and "đã có từ trước" in again.output
    # the second run gives each account a new password through the audited reset, and it works
    [password] = [line.split()[-1] for line in again.output.splitlines() if line.split()[:1] == ["giamsat"]]
    with app.app_context():
        from werkzeug.security import check_password_hash

        from survey_service.models import AuditEvent, StaffUser

        session = get_session()
        user = session.scalar(sa.select(StaffUser).where(StaffUser.username == "giamsat"))
        assert check_password_hash(user.password_hash, password)
        resets = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "user.password_reset")).all()
        assert len(resets) == 5 and {e.actor for e in resets} == {"demo"}
    app.extensions["db_engine"].dispose()


def _next_round(questionnaires, continues: dict[str, str]):
    """QNA-2026 next to QNA-2023 in an editable copy: the same files, 2026 dates, a ``continues`` column."""
    directory = questionnaires / "rounds" / "QNA-2026"
    shutil.copytree(questionnaires / "rounds" / "QNA-2023", directory)
    path = directory / "round.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(code="QNA-2026", year=2026, opens_on="2026-09-01", closes_on="2026-10-30")
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    path = directory / "agencies.csv"
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([header + ",continues"] + [f"{r},{continues.get(r.split(',')[0], '')}" for r in rows])
                    + "\n", encoding="utf-8")
    return directory


def test_a_round_continuing_an_earlier_one_keeps_the_mapping(app, session, editable_copy, runner):
    directory = _next_round(editable_copy, {"SNV": "QNA-2023:SNV QNA-2023:SNGV", "TAMKY": "QNA-2023:TAMKY"})
    checked = runner.invoke(args=["round", "check", str(directory)])
    assert checked.exit_code == 0, checked.output
    assert "2 cơ quan kế tục cơ quan của đợt trước" in checked.output and "Đợt QNA-2026 hợp lệ." in checked.output
    assert runner.invoke(args=["round", "load", str(directory)]).exit_code == 0
    snv = session.scalar(sa.select(Agency).join(Round).where(Round.code == "QNA-2026", Agency.code == "SNV"))
    assert [(c.round_code, c.agency_code) for c in snv.continues] == [("QNA-2023", "SNV"), ("QNA-2023", "SNGV")]
    assert count(session, AgencyContinuation) == 3

    path = directory / "agencies.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("QNA-2023:SNV QNA-2023:SNGV", "QNA-2023:SNV"),
                    encoding="utf-8")
    again = runner.invoke(args=["round", "load", str(directory)])
    assert again.exit_code == 0 and "cơ quan SNV kế tục QNA-2023:SNV" in again.output
    session.expire_all()
    assert count(session, AgencyContinuation) == 2


def test_a_continuation_that_points_nowhere_loads_nothing(app, session, editable_copy, runner):
    directory = _next_round(editable_copy, {"SNV": "QNA-2023:SOVH"})
    result = runner.invoke(args=["round", "load", str(directory)])
    assert result.exit_code == 1
    assert ("agencies.csv: cơ quan SNV: continues QNA-2023:SOVH, nhưng đợt QNA-2023 không có cơ quan SOVH"
            in result.output)
    assert count(session, Round) == 0


def test_commands_that_validate_need_no_secret(tmp_path):
    from survey_service import create_app

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "QUESTIONNAIRE_DIR": str(QUESTIONNAIRE_DIR),
                      "SECRET_KEY": None, "SHEET_SIGNING_KEYS": None}, require_secrets=False)
    runner = app.test_cli_runner()
    checked = runner.invoke(args=["round", "check", str(ROUND_DIR)])
    assert checked.exit_code == 0 and "Đợt QNA-2023 hợp lệ." in checked.output
    assert "department     20  Các sở, ban, ngành" in checked.output
    assert runner.invoke(args=["questionnaires", "check"]).exit_code == 0
    refused = runner.invoke(args=["sheets", "print", "--round", "QNA-2023", "--out", str(tmp_path / "x.pdf")])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.output.strip().startswith("LỖI Lệnh này cần thiết lập bí mật SHEET_SIGNING_KEYS, chưa được đặt")
    with pytest.raises(RuntimeError, match="SECRET_KEY, SHEET_SIGNING_KEYS"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "SECRET_KEY": None,
                    "SHEET_SIGNING_KEYS": None})


def _edit_methodology(directory, change) -> None:
    path = directory / "rounds" / "QNA-2023" / "methodology.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize(("change", "reason"), [
    (lambda d: d["coefficients"].update(DG4="log"), "settings['coefficients']['DG4']: unknown preset 'log'"),
    (lambda d: d.update(min_answered_share=1.5), "settings['min_answered_share'] must be a number in [0, 1]"),
    (lambda d: d.update(max_half_width=0), "settings['max_half_width'] must be a number in (0, 1]"),
    (lambda d: d.update(lonely_psu="drop"), "settings['lonely_psu'] must be one of"),
    (lambda d: d["max_points"]["department"].update(A1=-1),
     "settings['max_points']['department']['A1'] must be"),
    (lambda d: d["group_weights"]["district"].update({"HĐ-CT": -1}),
     "settings['group_weights']['district'] must hold numbers >= 0"),
    (lambda d: d["group_weights"].update(vertical={"CC-ND": 0, "HĐ-CT": 0}),
     "settings['group_weights']['vertical'] sums to 0"),
    (lambda d: d["min_respondents"].update({"HĐ-CT": 0}),
     "settings['min_respondents']['HĐ-CT'] must be an integer"),
])
def test_round_check_refuses_settings_the_analysis_refuses(runner, editable_copy, change, reason):
    """What the settings mean is checked once, by the analysis, when a round is checked or loaded."""
    _edit_methodology(editable_copy, change)
    result = runner.invoke(args=["round", "check", str(editable_copy / "rounds" / "QNA-2023"),
                                 "--questionnaires", str(editable_copy)])
    assert result.exit_code == 1, result.output
    assert "methodology.yaml" in result.output and reason in result.output, result.output


def test_round_files_use_the_analysis_setting_names():
    """One schema: the bundled rounds' methodology keys are the analysis's setting names (and the sample
    rule)."""
    import analysis
    from survey_service.questionnaires import methodology

    names = set(analysis.SETTINGS_KEYS) | set(analysis.OPTIONAL_SETTINGS_KEYS)
    assert set(analysis.SETTINGS_KEYS) <= methodology._METHODOLOGY_REQUIRED
    own = {"online_sample_size", "satisfaction_items"}
    assert (methodology._METHODOLOGY_REQUIRED | methodology._METHODOLOGY_OPTIONAL) - names == own
    for directory in (QUESTIONNAIRE_DIR / "rounds").iterdir():
        keys = set(yaml.safe_load((directory / "methodology.yaml").read_text(encoding="utf-8")))
        assert keys - own <= names, directory.name

