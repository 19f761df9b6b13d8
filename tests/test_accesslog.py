"""The access log of the serving command (gunicorn with ``MaskingLogger``) writes no invitation code, however
it is spelled and wherever it stands in a logged URL, and keeps the rest of each line readable."""
from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import quote, unquote_plus

import pytest
from gunicorn.config import Config

from survey_service.accesslog import MaskingLogger
from survey_service.services import invitations

CODE = "47X9-2RFZ-Z87J"
#: The code as people type it and as a URL then carries it.
SPELLINGS = [
    "47X9-2RFZ-Z87J", "47x9-2rfz-z87j", "47X92RFZZ87J", "47x92rFzZ87j", "47x9+2rfz+z87j",
    "47x9%202rfz%20z87j", "47X9%2D2RFZ%2Dz87j", "47x9%252D2rfz%252Dz87j", "%2047x9+2rfz+z87j%20",
    "47+x92r+fzz8+7j", "47x9.2rfz_z87j", "47x9--2rfz  z87j", "47x9%C2%A02rfz%E2%80%93z87j",
    "47x9%092rfz%0Az87j", "-47x9-2rfz-z87j-",
    # fullwidth, as a phone keyboard in a CJK mode types them (the portal reads them after NFKC)
    "４７Ｘ９－２ＲＦＺ－Ｚ８７Ｊ", "４７ｘ９\u30002rfzｚ８７j", quote("４７Ｘ９２ＲＦＺＺ８７Ｊ"),
    "47x9%EF%BC%8D2rfz%EF%BC%8Dz87j",
]
#: Every atom that can hold the path, the query or the referrer, and the cookies.
FORMAT = ('%(h)s "%(r)s" %(s)s U=%(U)s q=%(q)s f="%(f)s" ref=%({referer}i)s raw=%({raw_uri}e)s '
          'path=%({path_info}e)s query=%({query_string}e)s eref=%({http_referer}e)s '
          'cookie=%({cookie}i)s ecookie=%({http_cookie}e)s')


@pytest.fixture
def access_log(tmp_path):
    """Writes one line with gunicorn's formatter and the serving command's logger class; returns it."""
    path = tmp_path / "access.log"
    cfg = Config()
    cfg.set("accesslog", str(path))
    cfg.set("access_log_format", FORMAT)
    logger = MaskingLogger(cfg)

    def line(path_info: str, query: str = "", referer: str = "-", method: str = "GET") -> str:
        raw_uri = path_info + (f"?{query}" if query else "")
        environ = {"REQUEST_METHOD": method, "RAW_URI": raw_uri, "PATH_INFO": path_info,
                   "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.7",
                   "HTTP_REFERER": referer, "HTTP_COOKIE": "session=secret-cookie"}
        request = SimpleNamespace(headers=[("REFERER", referer), ("COOKIE", "session=secret-cookie")])
        response = SimpleNamespace(status="200 OK", sent=10, headers=[])
        logger.access(response, request, environ, timedelta(milliseconds=5))
        for handler in logger.access_log.handlers:
            handler.flush()
        return path.read_text(encoding="utf-8").splitlines()[-1]

    return line


def _shows_the_code(line: str) -> bool:
    """Whether the code can be read off the line: unescaped (twice), bytes read back as UTF-8, and with
    every character the portal drops removed."""
    text = unquote_plus(unquote_plus(line))
    try:
        text = text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return CODE.replace("-", "") in re.sub(r"[\s\-_.·–—+]", "", unicodedata.normalize("NFKC", text)).upper()


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_code_is_masked_in_every_spelling_anywhere_in_the_url(access_log, spelling):
    referer = f"https://cchc.example.vn/staff/invitations/?round=QNA-2023&code={spelling}"
    for path, query in [("/staff/invitations/", f"round=QNA-2023&code={spelling}"),
                        ("/staff/invitations/", f"code={spelling}&round=QNA-2023"),
                        (f"/staff/invitations/{spelling}", ""), (f"/c/{spelling}", ""), (f"/C//{spelling}", "")]:
        line = access_log(path, query, referer)
        assert "…" in line and not _shows_the_code(line), line
        assert "secret-cookie" not in line
        assert line.startswith(f'10.0.0.7 "GET {path[:3]}') and ' HTTP/1.1" 200 ' in line  # the rest as is
        assert "round=QNA-2023" in line.split(" HTTP/1.1")[0] or not query


def test_a_decoded_path_keeps_no_code_either(access_log):
    """PATH_INFO is the path decoded, its UTF-8 bytes read as Latin-1: a no-break space is two characters."""
    decoded = "/staff/invitations/47x9 2rfz\u00c2\u00a0z87j"
    line = access_log(decoded, "", "-")
    assert "path=/staff/invitations/… " in line and "U=/staff/invitations/… " in line and not _shows_the_code(line)


def test_a_fullwidth_code_in_a_decoded_path_is_masked(access_log):
    """The portal accepts ``４７Ｘ９…`` (NFKC): its UTF-8 bytes read as Latin-1 in PATH_INFO are masked too."""
    decoded = "/c/" + "４７Ｘ９－２ＲＦＺ－Ｚ８７Ｊ".encode().decode("latin-1")
    line = access_log(decoded, "code=" + decoded[3:], "-")
    assert "query=code=… " in line and not _shows_the_code(line), line
    assert invitations.normalise_code("４７Ｘ９－２ＲＦＺ－Ｚ８７Ｊ") == CODE


def test_what_is_not_a_code_stays_readable(access_log):
    for path, query in [("/staff/progress/QNA-2023/progress.xlsx", "kind=district&sort=shortfall"),
                        ("/paper/ledger/QNA2023-00017-D", ""),
                        ("/paper/print", "round=DNG-2026-DEMO&printed=17-52"),
                        ("/staff/responses/QNA-2023/r/3f2a9c8d7e6b5a4c3d2e1f0a9b8c7d6e", ""),
                        ("/static/js/scanner.js", ""), ("/paper/agreement", "round=QNA-2023")]:
        line = access_log(path, query)
        assert "…" not in line and f'"GET {path}{"?" + query if query else ""} HTTP/1.1"' in line, line
