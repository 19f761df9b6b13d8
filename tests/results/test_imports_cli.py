"""CSV import (all or nothing, every bad line reported) and the analysis CLI writing XLSX, CSV and SAV."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import pandas as pd
import pyreadstat
import sqlalchemy as sa

import analysis
from survey_service import dates
from survey_service.models import Answer, AuditEvent, Channel, Response
from survey_service.services import ballots, imports, rounds
from survey_service.services.sealing import OwnerKey
from tests.conftest import SECRET, collect_from_today
from tests.results.conftest import csv_bytes


def test_import_stores_responses_with_channel_keys_and_matrix_rows(builder, session):
    rows = [
        builder.row("CC-CT", "SNV", "4"),
        builder.row("LĐ-CP", "STC", "3", division="TCKH", district="TAMKY", respondent="p1"),
        builder.row("LĐ-CP", "SKHDT", "2", division="TCKH", district="TAMKY", respondent="p1"),
        builder.row("HĐ-CT", "SNV", "4", respondent="d1", KN="Cần công khai hơn"),
        builder.row("HĐ-CT", "TAMKY", "K", respondent="d1"),
        builder.row("LĐH-CH", "SNV", "4"),
        builder.row("LĐH-CH", "SNV", "4"),
        builder.row("LĐH-CH", "SNV", "4"),
    ]
    report = builder.load(rows)
    assert report.responses == 7 and report.by_form["HĐ-CT"] == 1 and report.surplus == 1
    responses = session.scalars(sa.select(Response)).all()
    assert [r.channel for r in responses if r.form_code in ("CC-CT", "LĐ-CP")] == [Channel.ONLINE] * 3
    ldcp = [r for r in responses if r.form_code == "LĐ-CP"]
    assert ldcp[0].respondent_key == ldcp[1].respondent_key and ldcp[0].division_id is not None
    matrix = next(r for r in responses if r.form_code == "HĐ-CT")
    assert matrix.channel is Channel.PAPER and matrix.agency_id is None
    assert {a.agency_id is None for a in matrix.answers if a.item_code == "KN"} == {True}
    assert len({a.agency_id for a in matrix.answers if a.item_code != "KN"}) == 2
    assert sorted(r.surplus for r in responses if r.form_code == "LĐH-CH") == [False, False, True]
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "responses.import"))
    assert event.new_value["responses"] == 7


def test_bad_rows_are_all_reported_and_nothing_is_imported(builder, session):
    rows = [
        builder.row("CC-CT", "SNV", "4"),
        builder.row("CC-CT", "XYZ", "4"),                        # line 3: unknown agency
        builder.row("CC-CT", "SNV", "4", I01="7"),               # line 4: not an option
        builder.row("CC-CT", "SNV", "4", I07="5"),               # line 5: not an option either
        builder.row("CC-CT", "SNV", "4", E01="3"),               # line 6: item of another form
        builder.row("LĐ-CP", "SNV", "4", division="TCKH", district="TAMKY"),  # line 7: division not under SNV
        builder.row("HĐ-CT", "SNV", "4"),                        # line 8: matrix row without respondent
        {**builder.row("CC-CT", "SNV", "4"), "form": "NOPE"},      # line 9: unknown form
    ]
    try:
        imports.import_responses(session, builder.round, csv_bytes(rows), today=pd.Timestamp("2023-10-01").date(),
                                   secret=SECRET)
    except imports.ImportRejected as exc:
        lines = [e.line for e in exc.errors]
        messages = {e.line: e.message for e in exc.errors}
    else:
        raise AssertionError("bad rows were accepted")
    session.rollback()
    assert sorted(set(lines)) == [3, 4, 5, 6, 7, 8, 9]
    assert "XYZ" in messages[3] and "'7'" in messages[4] and "I07" in messages[5] and "E01" in messages[6]
    assert "TCKH" in messages[7] and "respondent" in messages[8] and "NOPE" in messages[9]
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(Answer)) == 0


def test_bad_header_and_encoding(builder, session):
    for data, needle in ((b"form,agency,ZZ9\nCC-CT,SNV,1\n", "ZZ9"), (b"agency\nSNV\n", "form"),
                         (b"form,agency\nCC-CT,S\xe1\n", "UTF-8"), (b"", "rỗng")):
        try:
            imports.import_responses(session, builder.round, data, today=pd.Timestamp("2023-10-01").date(),
                                   secret=SECRET)
        except imports.ImportRejected as exc:
            assert exc.errors[0].line == 1 and needle in exc.errors[0].message
        else:
            raise AssertionError(data)


def _number_formats(path, sheet: str, agency: str = "SNV") -> dict[str, str]:
    """Header → number format of the agency's row (as Excel will show it)."""
    import openpyxl

    ws = openpyxl.load_workbook(path)[sheet]
    row = next(r for r in ws.iter_rows(min_row=2) if r[0].value == agency)
    return {head.value: cell.number_format for head, cell in zip(ws[1], row)}


def test_cli_import_then_analysis_run_to_every_format(builder, runner, session, tmp_path):
    collect_from_today(session, builder.round)  # the CLI imports with today's date
    rows = ([builder.row("CC-CT", "SNV", v) for v in "12344"] + [builder.row("LĐH-CH", "SNV", "4")]
            + [builder.row("HĐ-CT", a, "3", respondent="d1") for a in ("SNV", "STP", "TAMKY")])
    path = tmp_path / "in.csv"
    path.write_bytes(csv_bytes(rows))
    result = runner.invoke(args=["responses", "import", "--round", "QNA-2023", str(path)])
    assert result.exit_code == 0, result.output
    assert "Đã nhập 7 phiếu trả lời" in result.output
    assert "0 người đã vào dữ liệu, 7 người đang chờ" in result.output  # (7 respondents, below 2k per cell)
    result = runner.invoke(args=["round", "close", "QNA-2023"])  # the close releases them all
    assert result.exit_code == 0, result.output

    xlsx, csv_out, sav, answers = (tmp_path / n for n in ("r.xlsx", "r.csv", "r.sav", "answers.csv"))
    responses = tmp_path / "responses.sav"
    result = runner.invoke(args=["analysis", "run", "--round", "QNA-2023", "--out", str(xlsx), "--out", str(csv_out),
                                 "--out", str(sav), "--answers", str(answers), "--responses", str(responses)])
    assert result.exit_code == 0, result.output
    book = pd.read_excel(xlsx, sheet_name=None)
    assert list(book) == ["Tổng hợp", "Theo lĩnh vực", "Theo câu hỏi", "Ô mẫu", "Chẩn đoán trọng số", "Mục tiêu",
                          "Thiết lập phương pháp", "Nguồn gốc số liệu"]
    # the sampling cells with their population and the fraction of the finite population correction
    cells = book["Ô mẫu"].set_index("Ô mẫu (tầng)")
    assert (cells["Tỷ lệ chọn mẫu (0: không hiệu chỉnh tổng thể hữu hạn)"]
            == cells["Số người trả lời được công bố"] / cells["Tổng thể (staff_counts.csv)"]).any()
    for companion in ("items", "cells", "criteria"):
        assert (tmp_path / f"answers.{companion}.csv").exists()
    summary = book["Tổng hợp"].set_index("Mã cơ quan")
    # the lone LĐH-CH leader and council member are groups under min_breakdown: not counted, not used
    assert summary.loc["SNV", "Số phiếu hợp lệ"] == 5
    assert pd.isna(summary.loc["SXD", "Tổng điểm điều tra XHH"])
    formats = _number_formats(xlsx, "Tổng hợp")
    assert formats["Tổng điểm điều tra XHH"] == "#,##0.00" and formats["Tỷ lệ hài lòng (%)"] == "#,##0.0"
    assert formats["Số phiếu hợp lệ"] == "#,##0" and formats["Điểm A1"] == "#,##0.00"
    assert formats["Tên cơ quan"] == "General"
    assert _number_formats(xlsx, "Theo câu hỏi")["Điểm trung bình (0-1)"] == "#,##0.000"
    provenance = dict(book["Nguồn gốc số liệu"].to_numpy().tolist())
    assert provenance["Đợt khảo sát"] == "QNA-2023" and len(provenance["Mã băm cấu hình phương pháp (SHA-256)"]) == 64
    # the analysis parameters are rows a person reads, not JSON
    assert provenance["Mức tin cậy của khoảng tin cậy"] == "95\u00a0%"
    assert provenance["Số lần mô phỏng khoảng xếp hạng"] == "10.000"
    assert provenance["Cách làm tròn"].startswith("làm tròn")
    assert not any(str(v).startswith(("{", "[")) for v in provenance.values())

    raw = csv_out.read_bytes()
    assert raw.startswith("\ufeff".encode())
    # plain tables: pandas reads them without options (the BOM is taken as UTF-8), the provenance is beside them
    from_csv = pd.read_csv(csv_out).set_index("Mã cơ quan")
    assert from_csv.loc["SNV", "Tổng điểm điều tra XHH"] == summary.loc["SNV", "Tổng điểm điều tra XHH"]
    sidecar = json.loads((tmp_path / "r.provenance.json").read_text(encoding="utf-8"))
    assert sidecar["round"] == "QNA-2023" and sidecar["data_file"] == "r.csv" and len(sidecar["methodology_hash"]) == 64

    frame, meta = pyreadstat.read_sav(str(sav))
    assert meta.column_names_to_labels["sp"] == "Tổng điểm điều tra XHH"
    assert meta.variable_value_labels["kind"][1.0] == "Sở, ban, ngành"
    assert "QNA-2023" in meta.file_label
    assert frame.set_index("agency").loc["SNV", "sp"] == summary.loc["SNV", "Tổng điểm điều tra XHH"]
    # every estimate has its SE, and estimates are Scale, codes Nominal, ranks Ordinal
    assert {"sp_se", "satisfaction_se", "points_A1_se", "points_A1_lo", "points_A1_hi"} <= set(frame.columns)
    assert meta.variable_measure["sp"] == "scale" and meta.variable_measure["points_A1_se"] == "scale"
    assert meta.variable_measure["agency"] == "nominal" and meta.variable_measure["rank"] == "ordinal"
    # whole numbers without decimals, estimates with two
    assert meta.original_variable_types["rank"] == "F8.0" and meta.original_variable_types["n"] == "F8.0"
    assert meta.original_variable_types["sp"] == "F8.2"

    # the response-level file: one case per sheet × agency, answers with value labels, K declared missing
    cases, rmeta = pyreadstat.read_sav(str(responses), user_missing=True)
    snv = cases[(cases["agency"] == "SNV") & (cases["form"] == "CC-CT")]
    assert len(snv) == 5 and sorted(snv["I02"]) == [1.0, 2.0, 3.0, 4.0, 4.0]
    assert rmeta.variable_value_labels["I02"][4.0] and rmeta.variable_measure["I02"] == "ordinal"
    # an item's variable label is its question; its codes are whole numbers
    assert rmeta.column_names_to_labels["I02"].startswith("[A1] I02. Anh/Chị đánh giá như thế nào về tính cụ thể")
    assert rmeta.original_variable_types["I02"] == "F8.0"
    assert len(cases[cases["form"] == "HĐ-CT"]) == 0  # one council member: a group under min_breakdown

    # the tidy answers are per-response rows too: the lone LĐH-CH leader and council member are left out,
    # and since they entered no figure either, the weights of the answers written give the points back
    tidy = pd.read_csv(answers)
    assert set(tidy["group"]) == {"CC-CT"} and tidy["response_id"].nunique() == 5
    # the file speaks the analysis library's names, so its validity rule applies to it as it stands: each
    # sheet written answers every rated item of its form, and would answer half of a form twice as long
    rated = {form: len(q.scale_items) for form, q in builder.forms.items()}
    assert analysis.answered_enough(tidy, rated_items=rated, min_answered_share=1.0).all()
    twice = {form: 2 * n for form, n in rated.items()}
    assert not analysis.answered_enough(tidy, rated_items=twice, min_answered_share=0.75).any()
    assert json.loads((tmp_path / "answers.provenance.json").read_text(encoding="utf-8"))[
        "analysis_parameters"]["min_breakdown"] == 5
    snv = tidy[(tidy["agency"] == "SNV") & (tidy["criterion"] == "A1")]
    points = book["Theo lĩnh vực"].set_index(["Mã cơ quan", "Mã lĩnh vực"]).loc[("SNV", "A1"), "Điểm"]
    assert round(4 * (snv["weight"] * snv["value"].fillna(0)).sum(), 2) == points
    # with every group shown (min_breakdown 1), every group's answers are written
    builder.round.settings = {**builder.round.settings, "min_breakdown": 1}
    session.commit()
    result = runner.invoke(args=["analysis", "run", "--round", "QNA-2023", "--out", str(csv_out),
                                 "--answers", str(answers)])
    assert result.exit_code == 0, result.output
    tidy = pd.read_csv(answers)
    assert set(tidy["group"]) == {"CC-CT", "LĐH-CH", "HĐ-CT"}


def test_cli_reports_bad_lines_and_bad_output(builder, runner, session, tmp_path):
    collect_from_today(session, builder.round)
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes([builder.row("CC-CT", "SNV", "4"), builder.row("CC-CT", "SNV", "4", I01="9")]))
    result = runner.invoke(args=["responses", "import", "--round", "QNA-2023", str(path)])
    assert result.exit_code == 1 and "dòng 3" in result.output and "không nhập phiếu nào" in result.output
    result = runner.invoke(args=["analysis", "run", "--round", "QNA-2023", "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code == 1 and ".pdf" in result.output
    result = runner.invoke(args=["analysis", "run", "--round", "NOPE", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and "NOPE" in result.output


def test_cli_import_dates_by_vietnams_day_not_the_machines(builder, runner, session, tmp_path, monkeypatch):
    """At 01:30 in Vietnam a server on UTC is still on the day before: the import takes Vietnam's day, on which
    the round opens, and dates the responses it releases with it."""
    vietnam_day = date.today() + timedelta(days=1)  # later than the machine's day, whatever its zone

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.combine(vietnam_day, time(1, 30), dates.VIETNAM).astimezone(tz)

    monkeypatch.setattr(dates, "datetime", Clock)
    rnd = builder.round
    rnd.opens_on, rnd.closes_on, rnd.closed_at = vietnam_day, vietnam_day + timedelta(days=30), None
    session.commit()
    path = tmp_path / "in.csv"
    path.write_bytes(csv_bytes([builder.row("CC-CT", "SNV", "4")] * 10))  # 2k of one cell: all but k released
    result = runner.invoke(args=["responses", "import", "--round", "QNA-2023", str(path)])
    assert result.exit_code == 0, result.output
    assert "5 người đã vào dữ liệu, 5 người đang chờ" in result.output
    session.expire_all()
    assert set(session.scalars(sa.select(Response.submitted_on).where(Response.round_id == rnd.id))) == {vietnam_day}


def test_an_import_into_an_owner_sealed_round_waits_for_the_owners_key(builder, session):
    """Sealed to the owner's public key like the round's online ballots: the server's secret releases
    nothing, the owner's key releases them all at the close."""
    rnd = builder.round
    owner = OwnerKey.generate(rnd.code)
    rounds.seal_to_owner(session, rnd, owner.public_key, actor="test")
    report = imports.import_responses(session, rnd, csv_bytes([builder.row("CC-CT", "SNV", "4")] * 10),
                                      today=date(2023, 10, 1), secret=SECRET, actor="test")
    assert (report.released, report.waiting) == (0, 10)
    assert ballots.release(session, rnd, ballots.sealer(SECRET, rnd.code), today=date(2023, 10, 1),
                           everything=True).unreadable == 10
    assert not session.scalar(sa.select(sa.func.count()).select_from(Response))
    assert ballots.release(session, rnd, owner, today=date(2023, 10, 1), everything=True).ballots == 10
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)) == 10
