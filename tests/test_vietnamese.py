"""Vietnamese collation: Đ after D, vowels with breve/circumflex/horn after the plain ones, tones in order."""
import random

import pytest
import sqlalchemy as sa

from survey_service.db import make_engine
from survey_service.vietnamese import sort_key
from tests.conftest import pg_or_skip

# In dictionary order; PostgreSQL's ICU collation "vi-x-icu" agrees (test below).
ORDERED = [
    "An", "An Hòa", "Anh", "Ăn", "Ân", "Ban Dân tộc", "Bảo hiểm xã hội tỉnh",
    "Ca", "Cà", "Cả", "Cã", "Cá", "Cạ", "Công an tỉnh",
    "Duy Xuyên", "Dương", "Đại Lộc", "Đài Phát thanh", "Điện Bàn", "Đông Giang",
    "Hiệp Đức", "Hội An", "Nam Giang", "Nam Trà My", "Nông Sơn", "Núi Thành",
    "On", "Ôn", "Ơn", "Phú Ninh", "Phước Sơn", "Quế Sơn", "Sở Công Thương", "Sở Nội vụ", "Sở Tài chính",
    "Tam Kỳ", "Tây Giang", "Thăng Bình", "Tiên Phước", "Uy", "Ủy ban", "Ưng", "Văn phòng UBND tỉnh",
]


def test_known_list_in_order():
    shuffled = ORDERED[:]
    random.Random(5).shuffle(shuffled)
    assert sorted(shuffled, key=sort_key) == ORDERED


def test_d_stroke_after_every_d():
    assert sorted(["Đà Nẵng", "Dz", "Da", "Du"], key=sort_key) == ["Da", "Du", "Dz", "Đà Nẵng"]


def test_tones_in_order_ngang_huyen_hoi_nga_sac_nang():
    assert sorted(["má", "mạ", "mà", "mả", "ma", "mã"], key=sort_key) == ["ma", "mà", "mả", "mã", "má", "mạ"]


def test_decomposed_text_sorts_like_composed():
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Đại Lộc")
    assert sort_key(nfd)[:2] == sort_key("Đại Lộc")[:2]


def test_python_default_order_is_wrong_here():
    # Why the key exists: plain sorted() puts Đ after every Latin letter.
    assert sorted(["Đại Lộc", "Tam Kỳ"]) == ["Tam Kỳ", "Đại Lộc"]
    assert sorted(["Đại Lộc", "Tam Kỳ"], key=sort_key) == ["Đại Lộc", "Tam Kỳ"]


@pytest.mark.postgres
def test_same_order_as_icu_in_postgresql():
    engine = make_engine(pg_or_skip())
    try:
        with engine.connect() as con:
            rows = con.execute(sa.text('SELECT n FROM unnest(CAST(:names AS text[])) AS t(n) '
                                       'ORDER BY n COLLATE "vi-x-icu"'), {"names": ORDERED[::-1]})
            assert [r[0] for r in rows] == ORDERED
    finally:
        engine.dispose()


# --- numbers -------------------------------------------------------------------------------------------
def test_one_number_format_comma_decimals_dot_thousands():
    from survey_service.vietnamese import number, percent, xlsx_format

    assert number(73.33333333333334, 2) == "73,33"
    assert number(1234567) == "1.234.567"
    assert number(12345.678, 1) == "12.345,7"
    assert percent(16.24) == "16,2\u00a0%" and percent(83) == "83,0\u00a0%" and percent(99.6) == "99,6\u00a0%"
    assert number(None) == percent(float("nan")) == "—"
    assert xlsx_format(0) == "#,##0" and xlsx_format(2) == "#,##0.00"


# --- dates and times -----------------------------------------------------------------------------------
def test_one_date_time_format_in_vietnam_time():
    from datetime import datetime, timedelta, timezone

    from survey_service.vietnamese import date_time

    utc = datetime(2026, 12, 6, 18, 59, 57, tzinfo=timezone.utc)
    assert date_time(utc) == "07/12/2026 01:59"  # seven hours ahead, the next day, no seconds
    # SQLite gives stored UTC times back without a zone
    assert date_time(utc.replace(tzinfo=None)) == "07/12/2026 01:59"
    assert date_time(utc.astimezone(timezone(timedelta(hours=-5)))) == "07/12/2026 01:59"
    assert date_time(None) == "—" and date_time(utc, seconds=True) == "07/12/2026 01:59:57"


def test_audit_values_read_in_vietnamese_and_local_time():
    from survey_service.services.audit_log import value_text

    assert value_text("returned") == "đã thu về" and value_text("verified") == "đã xác nhận"
    assert value_text({"status": "revoked", "role": "clerk"}) == (
        "trạng thái: đã thu hồi\nvai trò: nhân viên nhập phiếu")
    assert value_text({"expires_at": "2026-12-06T18:59+00:00"}) == "hết hạn lúc: 07/12/2026 01:59"
    assert value_text({"opens_on": "2026-12-01"}) == "mở từ: 01/12/2026"
    assert value_text("2026-13-45 not a date") == "2026-13-45 not a date" and value_text(6777) == "6777"


def test_pages_write_whole_numbers_with_thousands_separator(app):
    with app.app_context():
        render = app.jinja_env.from_string(
            "{{ 6777|vi_int }} | {{ 10000|vi_int }} | {{ none|vi_int }} | {{ at|local_time }}")
        from datetime import datetime

        assert render.render(at=datetime(2026, 12, 7, 2, 3, 55)) == "6.777 | 10.000 |  | 07/12/2026 09:03"
