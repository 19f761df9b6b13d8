"""Sampling frames: import with row-numbered errors, sample sizes, systematic and PPS selection with a recorded
seed, the official and reserve lists, the observer's sign-off before any sheet is issued, replacements from
the reserve; through the services and the CLI, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import math

import openpyxl
import pytest
import sqlalchemy as sa

from analysis.sampling import precision_sample_size, recommend_sample_size
from survey_service.models import AuditEvent, Frame, FrameKind, FrameUnit, SampleList
from survey_service.services import frames, sheets
from survey_service.services.frames import Design, FrameError
from tests.conftest import PASSWORD, collect_from_today

TODAY = __import__("datetime").date(2026, 12, 7)
COMMUNES = {"TAMKY": 120, "HOIAN": 60, "DIENBAN": 30, "THANGBINH": 10}


def households_csv(sizes=COMMUNES) -> bytes:
    lines = ["commune,village,ref,label"]
    for commune, n in sizes.items():
        lines += [f"{commune},Thôn {i % 4 + 1},{commune}-{i:04d},Hộ số {i}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def dossiers_xlsx(rows) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Cơ quan", "Lĩnh vực", "Số hồ sơ"])
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
def round_(loaded_round, session):
    collect_from_today(session, loaded_round)
    return loaded_round


def import_households(session, rnd, sizes=COMMUNES, name="ho.csv"):
    frame = frames.import_frame(session, rnd, "households", households_csv(sizes), name, today=TODAY, actor="test")
    session.commit()
    return frame


UNREADABLE = [
    (b"", "x.csv", "Tệp rỗng"),
    (b"\xff\xfe\x00", "x.csv", "không phải văn bản UTF-8"),
    (b"not a workbook", "x.xlsx", "không phải bảng tính XLSX"),
    (b"commune,ref\nTAMKY,A\n", "x.csv", "Dòng 1: thiếu cột village"),
    (b"commune,village,ref\n", "x.csv", "không có dòng dữ liệu"),
    (b"commune,village,ref\nTAMKY,T\x00,A\n", "x.csv", "Dòng 2: cột village có ký tự rỗng"),
]


def test_bad_files_and_rows_are_refused_whole_in_vietnamese(session, round_):
    for data, filename, message in UNREADABLE:
        with pytest.raises(FrameError) as caught:
            frames.import_frame(session, round_, "households", data, filename, today=TODAY, actor="test")
        assert message in str(caught.value), (data, str(caught.value))
        assert caught.value.status in (400, 422)
    data = ("commune,village,ref\nTAMKY,Thôn 1,A1\nNOWHERE,Thôn 1,A2\nTAMKY,,A3\nHOIAN,Thôn 2,A1\n"
            "HOIAN,Thôn 2,A4\n").encode()
    with pytest.raises(FrameError) as caught:
        frames.import_frame(session, round_, "households", data, "ho.csv", today=TODAY, actor="test")
    session.rollback()
    assert caught.value.errors == [
        "Dòng 3: xã, phường mã “NOWHERE” không có trong đợt QNA-2023.",
        "Dòng 4: cột village bỏ trống.",
        "Dòng 5: số/mã “A1” trùng với dòng 2.",
    ]
    assert session.scalar(sa.select(sa.func.count()).select_from(Frame)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(FrameUnit)) == 0


def test_dossier_register_from_xlsx_is_sized_per_agency_and_field(session, round_):
    rows = [("SNV", "Công chức", f"SNV-{i}") for i in range(200)] + [("STP", "Hộ tịch", f"STP-{i}") for i in range(40)]
    frame = frames.import_frame(session, round_, FrameKind.DOSSIERS, dossiers_xlsx(rows), "mot-cua.xlsx",
                                today=TODAY, actor="test")
    cells = {c.key: c for c in frames.plan(session, frame, Design(margin=0.05))}
    assert cells[("SNV", "Công chức")].sample == recommend_sample_size(200, margin=0.05, floor=0) == 134
    assert cells[("STP", "Hộ tịch")].sample == 37
    precise = {c.key: c for c in frames.plan(session, frame, Design(margin=0.1, target=0.9, target_margin=0.05))}
    assert precise[("SNV", "Công chức")].sample == precision_sample_size(200, proportion=0.9, half_width=0.05)
    assert precise[("SNV", "Công chức")].reserve == math.ceil(0.2 * precise[("SNV", "Công chức")].sample)
    frames.draw(session, frame, Design(margin=0.05), today=TODAY, seed=1, actor="test")
    assert frames.set_paper_targets(session, frame, "LĐH-CH", actor="test") == 2
    targets = {p.cell.agency.code: p.cell.target for p in sheets.paper_cells(session, round_, form_code="LĐH-CH")}
    assert (targets["SNV"], targets["STP"], targets["VPUB"]) == (134, 37, 2)
    with pytest.raises(FrameError, match="không có ô chỉ tiêu phiếu giấy cho: SNV, STP"):
        frames.set_paper_targets(session, frame, "HĐ-CT", actor="test")


def test_systematic_draw_is_reproducible_from_its_recorded_seed(session, round_):
    frame = import_households(session, round_)
    design = Design(margin=0.1, reserve_share=0.25)
    cells = frames.draw(session, frame, design, today=TODAY, actor="test")
    session.commit()
    first = {u.ref: (u.sample_list, u.list_position) for u in session.scalars(sa.select(FrameUnit))}
    for cell in cells:
        assert cell.sample == recommend_sample_size(COMMUNES[cell.agency], margin=0.1, floor=0)
        assert cell.weight == pytest.approx(cell.population / cell.sample)
    listed = frames.lists(session, frame)
    assert len(listed[SampleList.OFFICIAL]) == sum(c.sample for c in cells)
    assert len(listed[SampleList.RESERVE]) == sum(c.reserve for c in cells)
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "frame.sample"))
    assert event.new_value["seed"] == str(frame.seed)
    frames.draw(session, frame, design, today=TODAY, seed=frame.seed + 1, actor="test")
    assert {u.ref: (u.sample_list, u.list_position) for u in session.scalars(sa.select(FrameUnit))} != first
    frames.draw(session, frame, design, today=TODAY, seed=int(event.new_value["seed"]), actor="test")
    assert {u.ref: (u.sample_list, u.list_position) for u in session.scalars(sa.select(FrameUnit))} == first


def test_households_pps_draws_communes_then_an_equal_take(session, round_):
    frame = import_households(session, round_)
    cells = frames.draw(session, frame, Design(margin=0.1, communes=2), today=TODAY, seed=7, actor="test")
    drawn = [c for c in cells if c.sample]
    assert len(drawn) == 2 and "TAMKY" in {c.agency for c in drawn}  # 120 of 220: drawn with certainty
    take = math.ceil(recommend_sample_size(220, margin=0.1, floor=0) / 2)
    assert all(c.sample == min(take, c.population) for c in drawn)
    tamky = next(c for c in drawn if c.agency == "TAMKY")
    assert tamky.commune_probability == 1.0 and tamky.weight == pytest.approx(120 / take)
    assert {w["agency"] for w in frames.cell_weights(session, round_.id)} == {c.agency for c in drawn}


def test_no_sheet_is_issued_until_an_observer_signs_off(session, round_, make_user):
    frame = import_households(session, round_)
    plans = sheets.paper_cells(session, round_, form_code="LĐH-CH")
    with pytest.raises(sheets.SheetError, match="chưa được quan sát viên MTTQ/CCB ký duyệt"):
        sheets.issue_sheets(session, round_, plans, actor="test")
    session.rollback()
    observer = make_user("observer")
    with pytest.raises(FrameError, match="chưa được chọn mẫu"):
        frames.sign_off(session, frame, organisation="MTTQ", by=observer, today=TODAY)
    frames.draw(session, frame, Design(), today=TODAY, actor="test")
    with pytest.raises(FrameError) as refused:
        frames.sign_off(session, frame, organisation="MTTQ", by=make_user("supervisor"), today=TODAY)
    assert refused.value.status == 403
    frames.sign_off(session, frame, organisation="CCB", by=observer, today=TODAY)
    session.commit()
    assert frame.signed_lists_hash == frames.lists_hash(session, frame)
    with pytest.raises(FrameError, match="đã được ký duyệt"):
        frames.draw(session, frame, Design(), today=TODAY, actor="test")
    assert sheets.issue_sheets(session, round_, sheets.paper_cells(session, round_, form_code="LĐH-CH"),
                               actor="test")


def test_replacements_come_from_the_reserve_in_order_and_are_logged(session, round_, make_user):
    frame = import_households(session, round_, {"HOIAN": 30})
    frames.draw(session, frame, Design(margin=0.2, reserve_share=0.1), today=TODAY, seed=3, actor="test")
    official = [e.unit for e in frames.lists(session, frame)[SampleList.OFFICIAL]]
    reserve = [e.unit for e in frames.lists(session, frame)[SampleList.RESERVE]]
    assert len(official) == 14 and len(reserve) == 2
    with pytest.raises(FrameError, match="sau khi danh sách mẫu đã được ký duyệt"):
        frames.replace(session, official[0], reason="Chuyển đi", actor="test")
    frames.sign_off(session, frame, organisation="MTTQ", by=make_user("observer"), today=TODAY)
    assert frames.replace(session, official[0], reason="Chuyển đi", actor="test") is reserve[0]
    with pytest.raises(FrameError, match="không phải đơn vị đang được khảo sát"):
        frames.replace(session, official[0], reason="Lần nữa", actor="test")
    with pytest.raises(FrameError, match="lý do"):
        frames.replace(session, official[1], reason=" ", actor="test")
    assert frames.replace(session, reserve[0], reason="Vắng nhà", actor="test") is reserve[1]
    with pytest.raises(FrameError, match="đã dùng hết"):
        frames.replace(session, official[2], reason="Từ chối", actor="test")
    session.commit()
    logged = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "frame.replace")
                             .order_by(AuditEvent.id)).all()
    assert [(e.new_value["replaced"], e.new_value["by"], e.new_value["reserve_position"]) for e in logged] == [
        (official[0].ref, reserve[0].ref, 1), (reserve[0].ref, reserve[1].ref, 2)]
    statuses = {e.unit.ref: e.status for k in SampleList for e in frames.lists(session, frame)[k]}
    assert statuses[official[0].ref] == "Đã thay thế" and statuses[reserve[1].ref] == f"Thay cho {reserve[0].ref}"


def test_cli_imports_samples_and_exports(app, runner, session, round_, tmp_path):
    path = tmp_path / "ho.csv"
    path.write_bytes(households_csv({"HOIAN": 20}))
    result = runner.invoke(args=["frames", "import", "--round", "QNA-2023", "--kind", "households", str(path)])
    assert result.exit_code == 0, result.output
    frame_id = session.scalar(sa.select(Frame.id))
    result = runner.invoke(args=["frames", "sample", str(frame_id), "--margin", "0.2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "12" in result.output and "5" in result.output
    out = tmp_path / "lists.csv"
    result = runner.invoke(args=["frames", "lists", str(frame_id), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[0] == frames.EXPORT_COLUMNS
    assert [r[0] for r in rows[1:]] == ["Chính thức"] * 12 + ["Dự phòng"] * 3
    book = tmp_path / "lists.xlsx"
    assert runner.invoke(args=["frames", "lists", str(frame_id), "--out", str(book)]).exit_code == 0
    assert openpyxl.load_workbook(book).active.max_row == 1 + 12 + 3
    path.write_bytes(b"commune,village,ref\nXX,Th,1\n")
    result = runner.invoke(args=["frames", "import", "--round", "QNA-2023", "--kind", "households", "--name", "b",
                                 str(path)])
    assert result.exit_code == 1 and "Dòng 2: xã, phường mã “XX” không có trong đợt QNA-2023." in result.output


def test_pages_report_bad_rows_and_keep_the_sign_off_to_observers(app, session, round_, client, auth, make_user):
    supervisor, observer, admin = make_user("supervisor"), make_user("observer"), make_user("admin")
    auth.login(supervisor.username)
    bad = b"commune,village,ref\nTAMKY,Thon 1,A\nXX,Thon 1,B\n"
    response = client.post("/frames/import?round=QNA-2023", content_type="multipart/form-data",
                           data={"kind": "households", "file": (io.BytesIO(bad), "x.csv")})
    assert response.status_code == 422
    assert "Dòng 3: xã, phường mã “XX” không có trong đợt QNA-2023." in response.get_data(as_text=True)
    response = client.post("/frames/import?round=QNA-2023", data={"kind": "households",
                                                                  "file": (io.BytesIO(households_csv({"HOIAN": 20})),
                                                                           "ho.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    frame = session.scalar(sa.select(Frame))
    response = client.post(f"/frames/{frame.id}/sample", data={"margin": "không", "reserve": "0,2"})
    assert response.status_code == 400 and "không phải là số" in response.get_data(as_text=True)
    assert client.post(f"/frames/{frame.id}/sample", data={"margin": "0,2", "reserve": "0,2"}).status_code == 302
    assert client.get(f"/frames/{frame.id}/lists.xlsx").status_code == 200
    assert client.get(f"/frames/{frame.id}/lists.pdf").status_code == 404
    auth.logout()
    auth.login(admin.username)
    sign_off = f"/frames/{frame.id}/sign-off"
    assert client.post(sign_off, data={"organisation": "MTTQ", "confirmed": "1"}).status_code == 403
    auth.logout()
    auth.login(observer.username)
    assert client.post(sign_off, data={"organisation": "ABC"}).status_code == 400
    assert client.post(sign_off, data={"organisation": "CCB"}).status_code == 200  # the confirmation page
    assert client.post(sign_off, data={"organisation": "CCB", "confirmed": "1"}).status_code == 302
    auth.logout()
    auth.login(supervisor.username)
    official = frames.lists(session, frame)[SampleList.OFFICIAL][0].unit.ref
    response = client.post(f"/frames/{frame.id}/replace", data={"ref": official, "reason": "Chuyển nơi ở"})
    assert response.status_code == 302
    assert client.post(f"/frames/{frame.id}/replace", data={"ref": "nope", "reason": "x"}).status_code == 404
    assert "Đã thay thế" in client.get(f"/frames/{frame.id}").get_data(as_text=True)


def test_a_frame_or_its_sample_is_withdrawn_only_before_sign_off_and_any_sheet(app, runner, session, round_,
                                                                              make_user):
    """The CLI deletes a sample, then a frame; the observer signs off at the command line with their own password
    (audited under their account); nothing is deleted once signed off or once a sheet of the round is issued."""
    observer, supervisor = make_user("observer"), make_user("supervisor")
    frame, spare = import_households(session, round_), import_households(session, round_, name="nham.csv")
    frames.draw(session, frame, Design(), today=TODAY, seed=1, actor="test")
    session.commit()
    frame_id, spare_id = frame.id, spare.id
    result = runner.invoke(args=["frames", "delete", str(frame_id), "--sample-only"])
    assert result.exit_code == 0 and "Đã xóa mẫu đã chọn của khung mẫu" in result.output, result.output
    session.expire_all()
    assert frame.sampled_on is None and frame.seed is None
    assert session.scalar(sa.select(sa.func.count()).where(FrameUnit.frame_id == frame_id,
                                                            FrameUnit.sample_list.is_not(None))) == 0
    result = runner.invoke(args=["frames", "delete", str(frame_id), "--sample-only"])
    assert result.exit_code == 1 and "chưa được chọn mẫu; không có mẫu để xóa" in result.output
    result = runner.invoke(args=["frames", "delete", str(spare_id)])
    assert result.exit_code == 0 and "Đã xóa khung mẫu" in result.output, result.output
    assert session.scalar(sa.select(sa.func.count()).where(FrameUnit.frame_id == spare_id)) == 0
    assert runner.invoke(args=["frames", "delete", "999999"]).exit_code == 1

    runner.invoke(args=["frames", "sample", str(frame_id), "--seed", "2"])
    sign = ["frames", "sign-off", str(frame_id), "--organisation", "MTTQ", "--password-stdin"]
    for who, password, organisation in ((observer.username, "wrong", "MTTQ"), ("nobody", "x", "MTTQ"),
                                        (supervisor.username, PASSWORD, "MTTQ")):
        result = runner.invoke(args=[*sign[:4], organisation, sign[5], "--observer", who], input=password + "\n")
        assert result.exit_code == 1 and "Sai tên đăng nhập hoặc mật khẩu của tài khoản observer" in result.output
    result = runner.invoke(args=[*sign[:4], "ABC", sign[5], "--observer", observer.username], input=PASSWORD + "\n")
    assert result.exit_code == 1 and "MTTQ hoặc CCB" in result.output
    result = runner.invoke(args=[*sign, "--observer", observer.username], input=PASSWORD + "\n")
    assert result.exit_code == 0 and f"{observer.username} (MTTQ) đã ký duyệt" in result.output, result.output
    session.expire_all()
    assert frame.signed_off_by_id == observer.id and frame.signed_lists_hash == frames.lists_hash(session, frame)
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "frame.sign_off"))
    assert (event.user_id, event.actor) == (observer.id, "cli")
    for args in (["frames", "delete", str(frame_id)], ["frames", "delete", str(frame_id), "--sample-only"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1 and "đã được ký duyệt" in result.output and "không xóa" in result.output

    # once a sheet is issued, a frame imported afterwards stays as the record of what was done
    assert sheets.issue_sheets(session, round_, sheets.paper_cells(session, round_, form_code="LĐH-CH"),
                               actor="test")
    late = import_households(session, round_, name="muon.csv")
    session.commit()
    with pytest.raises(FrameError, match=r"đã phát \d+ phiếu; không xóa khung mẫu"):
        frames.delete_frame(session, late, actor="test")
    assert [e.action for e in session.scalars(sa.select(AuditEvent).where(AuditEvent.action.like("frame.%delete"))
                                              .order_by(AuditEvent.id))] == ["frame.sample_delete", "frame.delete"]


def test_the_page_withdraws_a_sample_or_a_frame_after_confirmation(app, session, round_, client, auth, make_user):
    supervisor, observer = make_user("supervisor"), make_user("observer")
    frame = import_households(session, round_, {"HOIAN": 20})
    frames.draw(session, frame, Design(margin=0.2), today=TODAY, seed=4, actor="test")
    session.commit()
    auth.login(observer.username)
    assert client.post(f"/frames/{frame.id}/delete", data={"confirmed": "1"}).status_code == 403
    auth.logout()
    auth.login(supervisor.username)
    page = client.get(f"/frames/{frame.id}").get_data(as_text=True)
    assert "Xóa mẫu đã chọn" in page and "Xóa khung mẫu" in page
    asked = client.post(f"/frames/{frame.id}/delete-sample")
    assert asked.status_code == 200 and "Khung mẫu được giữ lại" in asked.get_data(as_text=True)
    session.expire_all()
    assert frame.sampled_on is not None  # (nothing happens before the confirmation)
    assert client.post(f"/frames/{frame.id}/delete-sample", data={"confirmed": "1"}).status_code == 302
    refused = client.post(f"/frames/{frame.id}/delete-sample", data={"confirmed": "1"})
    assert refused.status_code == 409 and "không có mẫu để xóa" in refused.get_data(as_text=True)
    frames.draw(session, frame, Design(margin=0.2), today=TODAY, seed=4, actor="test")
    frames.sign_off(session, frame, organisation="CCB", by=observer, today=TODAY)
    session.commit()
    assert "Xóa khung mẫu" not in client.get(f"/frames/{frame.id}").get_data(as_text=True)
    refused = client.post(f"/frames/{frame.id}/delete", data={"confirmed": "1"})
    assert refused.status_code == 409 and "đã được ký duyệt" in refused.get_data(as_text=True)
    other = import_households(session, round_, {"TAMKY": 20}, name="khac.csv")
    session.commit()
    response = client.post(f"/frames/{other.id}/delete", data={"confirmed": "1"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/frames/?round=QNA-2023")
    assert session.get(Frame, other.id) is None
    assert client.post(f"/frames/{other.id}/delete", data={"confirmed": "1"}).status_code == 404
