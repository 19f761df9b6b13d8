"""Issuing, downloading and revoking codes: service, supervisor pages and the CLI; the rate counter."""
from __future__ import annotations

import csv
import io
import re
import subprocess
import threading

import pytest
import sqlalchemy as sa

from survey_service.db import get_session
from survey_service.models import (
    Agency,
    AuditEvent,
    CodeBatch,
    CodeStatus,
    InvitationCode,
    QuotaCell,
    SpentCode,
)
from survey_service.services import invitations, ratelimit
from survey_service.services.sealing import code_mark
from tests.conftest import PASSWORD, csrf_token_from
from tests.portal.test_adversary import AccessLog
from tests.test_accesslog import _shows_the_code

SECRET = "test-secret"


def test_issue_refuses_paper_cells_and_silly_counts(open_round, session):
    paper = session.scalar(sa.select(QuotaCell).where(QuotaCell.form_code == "HĐ-CT"))
    with pytest.raises(invitations.InvitationError, match="giấy"):
        invitations.issue_codes(session, paper, 5)
    online = invitations.find_cell(session, open_round, "CC-CT", "SNV")
    for bad in (0, invitations.MAX_BATCH + 1):
        with pytest.raises(invitations.InvitationError):
            invitations.issue_codes(session, online, bad)
    with pytest.raises(invitations.InvitationError, match="XYZ"):
        invitations.find_cell(session, open_round, "CC-CT", "XYZ")


def test_counts_per_cell_and_revoking_only_unused(issue, session, open_round):
    codes = issue("CC-CT", "SNV", 4)
    batch = session.scalar(sa.select(CodeBatch))
    used = session.scalar(sa.select(InvitationCode).where(InvitationCode.code == codes[0]))
    session.add(SpentCode(mark=code_mark(SECRET, used.code), quota_cell_id=used.quota_cell_id, submission_id="x"))
    assert invitations.revoke_codes(session, batch, [used.id, batch.codes[1].id], secret=SECRET) == 1
    session.commit()
    row = next(r for r in invitations.cell_counts(session, open_round) if r.cell.id == batch.quota_cell_id)
    assert (row.issued, row.unused, row.used, row.revoked) == (4, 2, 1, 1)
    assert invitations.revoke_codes(session, batch, secret=SECRET) == 2
    assert invitations.statuses(session, SECRET, [used])[used.id] is CodeStatus.USED
    # the batch's CSV and slips say the same
    status = invitations.statuses(session, SECRET, batch.codes)
    assert invitations.batch_csv(batch, "https://x.vn", status).count(",used") == 1
    assert sorted(status.values()) == sorted([CodeStatus.USED] + [CodeStatus.REVOKED] * 3)


def test_batch_pdf_has_readable_qr_links(issue, session, tmp_path):
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    codes = issue("CC-CT", "SNV", 3)
    batch = session.scalar(sa.select(CodeBatch))
    pdf = invitations.batch_pdf(batch, "https://cchc.example.vn", invitations.statuses(session, SECRET, batch.codes),
                                organiser="Sở Nội vụ tỉnh Quảng Nam",
                                round_name="Điều tra xã hội học năm 2023")
    (tmp_path / "codes.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "codes.pdf"), "-"], capture_output=True, text=True).stdout
    assert all(code in text for code in codes) and "Sở Nội vụ tỉnh Quảng Nam" in text
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(tmp_path / "codes.pdf"), str(tmp_path / "page")], check=True)
    found = {r.text for r in zxingcpp.read_barcodes(Image.open(next(tmp_path.glob("page*.png"))))}
    assert found == {f"https://cchc.example.vn/c/{code}" for code in codes}


def test_supervisor_issues_downloads_and_revokes(staff_client, open_round, session):
    client = staff_client("supervisor")
    page = client.get("/staff/invitations/")
    assert page.status_code == 200 and "Mã mời khảo sát trực tuyến" in page.get_data(as_text=True)
    vertical = session.scalar(sa.select(Agency.code).where(Agency.kind == "vertical").limit(1))
    cell = invitations.find_cell(session, open_round, "CC-ND", vertical)
    issued = client.post(f"/staff/invitations/cells/{cell.id}/issue", data={"count": "3"})
    assert issued.status_code == 303
    batch = session.scalar(sa.select(CodeBatch))
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/staff/invitations/batches/{batch.id}.csv").get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 3 and rows[0]["url"].endswith("/c/" + rows[0]["code"])
    pdf = client.get(f"/staff/invitations/batches/{batch.id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert client.post(f"/staff/invitations/cells/{cell.id}/issue", data={"count": "0"}).status_code == 400
    words = client.post(f"/staff/invitations/cells/{cell.id}/issue", data={"count": "ba"})
    assert words.status_code == 400 and "số nguyên" in words.get_data(as_text=True)
    assert client.post(f"/staff/invitations/batches/{batch.id}/revoke", data={}).status_code == 400
    asked = client.post(f"/staff/invitations/batches/{batch.id}/revoke", data={"all": "1"})
    assert asked.status_code == 200 and "Thu hồi 3 mã?" in asked.get_data(as_text=True)
    assert set(session.scalars(sa.select(InvitationCode.status))) == {CodeStatus.UNUSED}
    assert client.post(f"/staff/invitations/batches/{batch.id}/revoke",
                       data={"all": "1", "confirmed": "1"}).status_code == 303
    assert set(session.scalars(sa.select(InvitationCode.status))) == {CodeStatus.REVOKED}
    actions = set(session.scalars(sa.select(AuditEvent.action)))
    assert {"codes.issue", "codes.revoke"} <= actions


def test_other_roles_cannot_manage_codes(staff_client, open_round):
    client = staff_client("clerk")
    assert client.get("/staff/invitations/").status_code == 403


def test_cli_issues_codes_to_csv(runner, open_round, session, tmp_path):
    out, pdf = tmp_path / "codes.csv", tmp_path / "codes.pdf"
    result = runner.invoke(args=["codes", "issue", "--round", "QNA-2023", "--form", "CC-CT", "--agency", "SNV",
                                 "--count", "5", "--out", str(out), "--pdf", str(pdf)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert [r["code"] for r in rows] == sorted(session.scalars(sa.select(InvitationCode.code)))
    assert all(r["url"] == f"http://127.0.0.1:5000/c/{r['code']}" for r in rows)
    assert pdf.read_bytes().startswith(b"%PDF")
    bad = runner.invoke(args=["codes", "issue", "--round", "QNA-2023", "--form", "HĐ-CT", "--count", "5",
                              "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and "giấy" in bad.output
    assert "Đã phát 5 mã" in result.output
    assert "PUBLIC_BASE_URL chưa được đặt" in result.output  # the CLI says where its links point


def test_cli_accepts_the_ascii_spelling_of_a_form_code(runner, open_round, session, tmp_path):
    result = runner.invoke(args=["codes", "issue", "--round", "QNA-2023", "--form", "LD-CP", "--agency", "TAMKY",
                                 "--count", "2", "--out", str(tmp_path / "ldcp.csv")])
    assert result.exit_code == 0, result.output
    assert {c.quota_cell.form_code for c in session.scalars(sa.select(InvitationCode))} == {"LĐ-CP"}
    unknown = runner.invoke(args=["codes", "issue", "--round", "QNA-2023", "--form", "LD-XX", "--count", "2",
                                  "--out", str(tmp_path / "x.csv")])
    assert unknown.exit_code == 1 and "LD-XX" in unknown.output


def test_links_use_the_address_the_page_was_asked_at(staff_client, open_round, session, app):
    """Without PUBLIC_BASE_URL, a server on another port prints links to itself, not to port 5000."""
    client = staff_client("supervisor")
    cell = invitations.find_cell(session, open_round, "CC-CT", "SNV")
    client.post(f"/staff/invitations/cells/{cell.id}/issue", data={"count": "1"})
    batch = session.scalar(sa.select(CodeBatch))
    body = client.get(f"/staff/invitations/batches/{batch.id}.csv", base_url="http://192.0.2.7:8123").get_data(as_text=True)
    code = session.scalar(sa.select(InvitationCode.code))
    assert f"http://192.0.2.7:8123/c/{code}" in body
    app.config["PUBLIC_BASE_URL"] = "https://cchc.example.vn/"
    body = client.get(f"/staff/invitations/batches/{batch.id}.csv", base_url="http://192.0.2.7:8123").get_data(as_text=True)
    assert f"https://cchc.example.vn/c/{code}" in body


def test_rate_counter_increments_are_atomic_across_connections(app, session):
    """Eight threads with their own sessions hit one key: every count from 1 to 40 is handed out once."""
    session.commit()
    maker = app.extensions["db_sessionmaker"]
    counts, errors = [], []

    def worker():
        try:
            for _ in range(5):
                with maker() as s:
                    counts.append(ratelimit.hit(s, "code:shared", window_seconds=600, now=1_000_000))
                    s.commit()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(counts) == list(range(1, 41))
    assert ratelimit.current(get_session(), "code:shared", window_seconds=600, now=1_000_000) == 40
    assert ratelimit.current(get_session(), "code:shared", window_seconds=600, now=1_000_600) == 0


def test_codes_page_searches_by_form_agency_and_code_and_pages(issue, staff_client, open_round, session):
    codes = issue("CC-CT", "SNV", 2)
    for agency in ("STP", "STC"):
        issue("CC-CT", agency, 1)
    client = staff_client("supervisor")
    everything = client.get("/staff/invitations/?round=QNA-2023").get_data(as_text=True)
    assert "Trang chỉ tiêu" in everything and "Trang 1/" in everything  # more cells than one page holds
    only = client.get("/staff/invitations/?round=QNA-2023&form=CC-CT&agency=n%E1%BB%99i%20v%E1%BB%A5")
    only = only.get_data(as_text=True)
    assert "Sở Nội vụ" in only and "Sở Tư pháp" not in only and "Lô 1</a>" in only and "Lô 2</a>" not in only
    typed = codes[1].lower().replace("-", "")
    found = client.post("/staff/invitations/lookup", data={"round": "QNA-2023", "code": typed}).get_data(
        as_text=True)
    assert f"Mã <code>{codes[1]}</code> thuộc" in found and "chưa dùng" in found
    missing = client.post("/staff/invitations/lookup", data={"round": "QNA-2023", "code": "2222-2222-2222"})
    assert missing.status_code == 200 and "Không có mã" in missing.get_data(as_text=True)
    second = client.get("/staff/invitations/?round=QNA-2023&cells_page=2")
    assert second.status_code == 200 and "Trang 2/" in second.get_data(as_text=True)
    assert client.get("/staff/invitations/?round=QNA-2023&cells_page=abc").status_code == 200


def test_cli_refuses_codes_for_a_closed_round(runner, loaded_round, session, tmp_path):
    """QNA-2023 closed in 2023: its respondents could not answer, so no code is issued for it."""
    out = tmp_path / "codes.csv"
    result = runner.invoke(args=["codes", "issue", "--round", "QNA-2023", "--form", "CC-CT", "--agency", "SNV",
                                 "--count", "5", "--out", str(out)])
    assert result.exit_code == 1
    assert "đã kết thúc nhận phiếu" in result.output and "Không phát mã nào" in result.output
    assert not out.exists()
    assert session.scalar(sa.select(sa.func.count()).select_from(InvitationCode)) == 0


def _lookup_form(html: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's code look-up form."""
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*aria-label="Tra cứu một mã mời">(.*?)</form>',
                     html, re.DOTALL)
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2))
    return form.group(1), dict(hidden)


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_code_is_looked_up_by_post_and_never_goes_into_an_address(app, issue, open_round, make_user, client,
                                                                    tmp_path):
    codes = issue("CC-CT", "SNV", 2)
    log = AccessLog(app, tmp_path / "access.log")
    login = client.get("/staff/login").get_data(as_text=True)
    supervisor = make_user("supervisor").username
    assert client.post("/staff/login", data={"username": supervisor, "password": PASSWORD,
                                             "csrf_token": csrf_token_from(login)}).status_code == 302
    page = client.get("/staff/invitations/?round=QNA-2023&form=CC-CT").get_data(as_text=True)
    action, hidden = _lookup_form(page)
    assert action == "/staff/invitations/lookup" and hidden["round"] == "QNA-2023" and hidden["form"] == "CC-CT"
    typed = codes[1].lower().replace("-", " ")  # as read aloud over the phone
    found = client.post(action, data={**hidden, "code": typed})
    html = found.get_data(as_text=True)
    assert found.status_code == 200 and found.request.path == "/staff/invitations/lookup" and not found.history
    assert f"Mã <code>{codes[1]}</code> thuộc" in html and "chưa dùng" in html
    kept = {k: v for k, v in _lookup_form(html)[1].items() if k != "csrf_token"}
    assert '<option value="CC-CT" selected>' in html and kept == {"round": "QNA-2023", "form": "CC-CT"}
    links = re.findall(r'(?:href|action)="([^"]*)"', html)
    assert links and not any(_shows_the_code(link.replace("&amp;", "&")) for link in links)
    assert client.post(action, data={**hidden, "code": "2222-2222-2222"}).status_code == 200
    empty = client.post(action, data={**hidden, "code": " "})
    assert empty.status_code == 400 and "Vui lòng nhập mã mời cần tra cứu." in empty.get_data(as_text=True)
    forged = client.post(action, data={"round": "QNA-2023", "code": codes[1]})  # without the page's token
    assert forged.status_code == 400 and "CSRF" in forged.get_data(as_text=True)
    assert codes[1] not in forged.get_data(as_text=True)
    # an old bookmark with the code in its query finds nothing: the page shows no result and no code
    old = client.get(f"/staff/invitations/?round=QNA-2023&code={codes[1].lower().replace('-', '+')}")
    assert old.status_code == 200 and "Mã <code>" not in old.get_data(as_text=True)
    assert not _shows_the_code(old.get_data(as_text=True).replace(codes[0], ""))
    lines = log.lines()
    assert any('"GET /staff/invitations/?round=QNA-2023&code=… ' in line for line in lines), lines
    assert len(lines) >= 8 and not any(_shows_the_code(line) for line in lines), lines
