"""The adversary of the README's threat model, played on both databases.

Respondents answer through the HTTP portal in a known order (each from its own address and browser; some
save a draft first, one resumes on another device, LĐ-CP respondents rate several departments), behind the
access log the README's serving command writes. A submission that brings its cell to 2k waiting ballots
releases all but k of them, ``round release`` runs after a third and after two thirds of the respondents,
and the rest is released when the round is closed. Then, holding the database files as they are (no compaction:
table files with their dead row versions, and the whole write-ahead log), the audit table and that log, the
adversary tries every join this suite knows: by each identifier's order, by physical row order (SQLite
rowid and byte offset in the file; PostgreSQL ctid, xmin and byte offset in the heap file), by the place of
each response's uid and of each distinctive answer text in the write-ahead log, by the number of copies of
each in the table files and in the log, by audit times and by log lines; and the same joins for the
invitation codes, to order the codes' spending.

Three imports come in during collection too (a plain CSV, an ODK Central zip, and KoboToolbox's XLSX and
``;`` CSV, each of a few submissions of one cell), and the adversary backs up the database with the
service's own ``backup`` command after every step that stored a response, so that two consecutive backups
differ by exactly one release: each must show no new response of a cell or at least k of its respondents.
It also holds the exports: an imported submission's external key must not be testable against what the
database keeps of it; and it knows every respondent's exact answers: the digest of the answers kept on
each spent code (for the offline form's resend) must not be testable against them, even with the server's
secret.

The adversary is given the exact submission order (a proxy's log, or polling the quota figures around
each submission, tells it) and the batch each response was released in (the release's transaction id, its
place in the files). What is left to find is the order within a batch of a cell, and whom a batch holds:
every batch holds at least k respondents of its cell (k: the round's ``min_breakdown``).

The statistic: Kendall's S (concordant minus discordant pairs) between a join's order and the true
submission order, summed over the strata (quota cell × release batch), standardised by its mean and
standard deviation under the null of no association, estimated from 2,000 random permutations of the
submission order within strata. A join passes when |z| < 5: a join that carries no information fails with
probability about 6e-7 (normal tail), while one that follows the submission order, even a coarse one,
gives z above 8 with these 40-odd respondents.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import sqlalchemy as sa
from gunicorn.config import Config

from survey_service.accesslog import MaskingLogger
from survey_service.models import (
    POOLED_INVESTIGATORS, Agency, AuditEvent, Ballot, Draft, ImportedSubmission, InvitationCode, QuotaCell, Response,
    SpentCode,
)
from survey_service.questionnaires import xlsform
from survey_service.services import ballots, invitations, portal, receipts, rounds, sheets
from survey_service.services import xlsform as xlsform_service
from survey_service.services.sealing import code_mark
from survey_service.web import respond
from tests.conftest import SECRET
from tests.interop import export_files
from tests.portal.conftest import full_answers, ldcp_cell
from tests.portal.test_respond_views import form_fields
from tests.results.conftest import csv_bytes
from tests.test_citizens import _answers as citizen_answers
from tests.test_citizens import _key as key_sheet
from tests.test_citizens import citizens_round  # noqa: F401 (a fixture)

Z_BOUND = 5.0
PERMUTATIONS = 2000
LABEL = re.compile(r"Nhãn R(\d{3}(?:\.\d)?)")
#: The unkeyed digests an adversary tries on what it knows (a code, an external key, answers).
DIGESTS = (hashlib.sha256, hashlib.sha1, hashlib.md5, hashlib.blake2b)


def kendall_s(x: np.ndarray, y: np.ndarray) -> float:
    """Concordant minus discordant pairs; ties count zero."""
    return float((np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])).sum() / 2)


def order_z(groups: dict[object, list[tuple[float, float]]], rng: np.random.Generator) -> float:
    """Stratified Kendall S of (observed key, true order) per cell, as a z-score under permutation."""
    cells = [(np.array([k for k, _ in rows], float), np.array([t for _, t in rows], float))
             for rows in groups.values() if len(rows) > 2]
    observed = sum(kendall_s(x, y) for x, y in cells)
    null = np.array([sum(kendall_s(x, rng.permutation(y)) for x, y in cells) for _ in range(PERMUTATIONS)])
    if null.std() == 0:  # the key is constant within every cell: nothing to learn from it
        return 0.0
    return (observed - null.mean()) / null.std()


class AccessLog:
    """The portal behind gunicorn's access log with the serving command's logger class."""

    def __init__(self, app, path: Path):
        cfg = Config()
        cfg.set("accesslog", str(path))
        self.logger, self.path, self.wrapped = MaskingLogger(cfg), path, app.wsgi_app
        app.wsgi_app = self

    def __call__(self, environ, start_response):
        seen = {}

        def record(status, headers, exc_info=None):
            seen.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        start = time.perf_counter()
        body = b"".join(self.wrapped(environ, record))
        request = SimpleNamespace(headers=[(k[5:].replace("_", "-"), v) for k, v in environ.items()
                                           if k.startswith("HTTP_")])
        response = SimpleNamespace(status=seen["status"], sent=len(body), headers=seen["headers"])
        self.logger.access(response, request, environ, timedelta(seconds=time.perf_counter() - start))
        return [body]

    def lines(self) -> list[str]:
        for handler in self.logger.access_log.handlers:
            handler.flush()
        return self.path.read_text(encoding="utf-8").splitlines()


class Respondent:
    def __init__(self, app, code: str, number: int):
        self.app, self.code, self.number = app, code, number
        self.device(0)

    def device(self, which: int) -> None:
        """A browser on a machine of its own: its own cookie jar, address and user agent."""
        self.client = self.app.test_client()
        self.client.environ_base.update(REMOTE_ADDR=f"10.{which}.{self.number // 250}.{self.number % 250 + 1}",
                                        HTTP_USER_AGENT=f"Browser/{self.number}.{which}")

    def open(self) -> str:
        assert self.client.get(f"/c/{self.code}").status_code == 303
        page = self.client.get("/phieu")
        assert page.status_code == 200, page.get_data(as_text=True)[:300]
        return page.get_data(as_text=True)

    def choose(self, html: str, division: str) -> str:
        """LĐ-CP: pick a division on its page, then open the form it leads to."""
        fields = {name: m.group(1) for name in ("csrf_token", "form_tag")
                  if (m := re.search(rf'name="{name}" type="hidden" value="([^"]+)"', html))}
        chosen = self.client.post("/phieu/phong", data={**fields, "division": division})
        assert chosen.status_code == 303
        return self.open()

    def post(self, html: str, data: dict, status: int) -> str:
        """Post the form as a browser does, with the page's hidden fields (the offline form's answers key too)."""
        key = re.search(r'name="answers_key" type="hidden" value="([0-9a-f]+)"', html).group(1)
        page = self.client.post("/phieu", data={**form_fields(html), "answers_key": key, **data})
        assert page.status_code == status, page.get_data(as_text=True)[:500]
        return page.get_data(as_text=True)


def _pg_data_directory(url: str) -> Path | None:
    """The data directory of the cluster at the URL's port, when this machine's files can be read."""
    port = str(sa.engine.make_url(url).port or 5432)
    try:
        out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[2] == port and os.access(fields[5], os.R_OK):
            return Path(fields[5])
    return None


def _wal_start(session, database_url: str) -> str | None:
    """PostgreSQL: a new write-ahead log segment, begun now; nothing written before is in it or later ones."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    session.commit()
    port = str(sa.engine.make_url(database_url).port or 5432)
    subprocess.run(["su", "postgres", "-c", f"psql -p {port} -qAtc 'SELECT pg_switch_wal()'"], check=True,
                   capture_output=True)
    # (+ 1: an LSN on a segment's first byte is named after the segment before it)
    return session.scalar(sa.text("SELECT pg_walfile_name(pg_current_wal_lsn() + 1)"))


def _code_rows(session, database_url: str) -> dict[str, object]:
    """Where each invitation code's row is: PostgreSQL its ctid and xmin; SQLite its place in the file
    (after the log is copied into it)."""
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        return {code: where for code, where in session.execute(
            sa.text("SELECT code, ctid::text || '/' || xmin::text FROM invitation_code"))}
    session.connection().exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    session.commit()
    data = Path(sa.engine.make_url(database_url).database).read_bytes()
    return {code: data.find(code.encode()) for code in session.scalars(sa.select(InvitationCode.code))}


def _dump(session, database_url: str) -> str:
    """The database as a backup would have it: PostgreSQL's ``pg_dump`` (rows in their physical order),
    SQLite's SQL dump."""
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        url = sa.engine.make_url(database_url)
        return subprocess.run(["pg_dump", "-h", url.host, "-p", str(url.port or 5432), "-U", url.username,
                               url.database],
                              env={**os.environ, "PGPASSWORD": url.password}, capture_output=True, text=True,
                              check=True).stdout
    import sqlite3

    with sqlite3.connect(sa.engine.make_url(database_url).database) as con:
        return "\n".join(con.iterdump())


class Backups:
    """Backups taken with the service's ``backup`` command while the round collects, and the responses each
    holds (id → quota cell and respondent key)."""

    def __init__(self, cli, database_url: str, folder: Path):
        self.cli, self.pg, self.folder = cli, not database_url.startswith("sqlite"), folder
        self.taken: list[dict[int, tuple[int, str]]] = []

    def take(self) -> None:
        path = self.folder / f"backup-{len(self.taken)}"
        out = self.cli.invoke(args=["backup", str(path)])
        assert out.exit_code == 0, out.output
        self.taken.append(self._responses(path))

    def _responses(self, path: Path) -> dict[int, tuple[int, str]]:
        if not self.pg:
            import sqlite3

            with sqlite3.connect(path) as con:
                return {i: (c, k) for i, c, k in con.execute("SELECT id, quota_cell_id, respondent_key FROM response")}
        text = subprocess.run(["pg_restore", "--data-only", "--table=response", "--file=-", str(path)],
                              capture_output=True, text=True, check=True).stdout
        header = re.search(r"^COPY \S*response \(([^)]*)\) FROM stdin;$", text, re.M)
        columns = header.group(1).split(", ")
        rows = {}
        for line in text[header.end() + 1:].splitlines():
            if line == "\\.":
                break
            row = dict(zip(columns, line.split("\t")))
            rows[int(row["id"])] = (int(row["quota_cell_id"]), row["respondent_key"])
        return rows

    def check_batches(self, k: int) -> None:
        """Between two consecutive backups, a cell gains no response or those of at least k respondents, and
        nothing is lost."""
        for n, (before, after) in enumerate(zip(self.taken, self.taken[1:]), 1):
            assert before.keys() <= after.keys(), f"responses gone between backups {n - 1} and {n}"
            new: dict[int, set] = {}
            for response_id in after.keys() - before.keys():
                cell, respondent = after[response_id]
                new.setdefault(cell, set()).add(respondent)
            small = {cell: len(keys) for cell, keys in new.items() if len(keys) < k}
            assert not small, f"backup {n} shows fewer than {k} new respondents of a cell: {small}"


def _exports(session, rnd, q, labels: list[str], *, tmp_path: Path) -> dict[str, tuple[Path, list[str]]]:
    """Import files of CC-CT submissions about SNV, one per label: a plain CSV (three), an ODK Central zip,
    Kobo's XLSX and Kobo's ``;`` CSV (two each); name → (path, the submissions' external keys)."""
    rows = xlsform.survey_rows(q, q, xlsform_service.round_lists(session, rnd, q))
    files = {}
    chunks = {"csv": labels[:3], "central": labels[3:5], "kobo-xlsx": labels[5:7], "kobo-csv": labels[7:9]}
    for name, chunk in chunks.items():
        answers = [full_answers(q, value=str(1 + n % 3), text=label) for n, label in enumerate(chunk)]
        subs = [export_files.Sub(os.urandom(16).hex(), {"form_code": q.code, "q_version": q.version,
                                                         "agency": "SNV", **a}) for a in answers]
        if name == "csv":
            data, suffix = csv_bytes([{"form": q.code, "agency": "SNV", **a} for a in answers]), "csv"
        elif name == "central":
            data, suffix = export_files.central_zip(q.code, rows, subs), "csv.zip"
        elif name == "kobo-xlsx":
            data, suffix = export_files.kobo_xlsx(q.title, rows, subs, []), "xlsx"
        else:
            data, suffix = export_files.kobo_csv(rows, subs), "csv"
        path = tmp_path / f"import-{name}" / f"CC-CT.{suffix}"
        path.parent.mkdir()
        path.write_bytes(data)
        files[name] = (path, [] if name == "csv" else [s.uuid for s in subs])
    return files


def _database_bytes(session, database_url: str, wal_start: str | None) -> tuple[bytes, dict[str, bytes], bytes]:
    """Everything the adversary reads from disk: (all files, {table: its own file}, the write-ahead log).

    SQLite: the database file (every table) and its write-ahead log. PostgreSQL: the write-ahead log (every
    segment for the searches of drafts; for the joins the segments from the one being written when the test
    started, in log order: the earlier ones, and recycled segments waiting under later names, hold nothing
    written by this test), then, after a CHECKPOINT, the heap files of the tables.
    """
    if session.get_bind().dialect.name == "sqlite":
        path = Path(sa.engine.make_url(database_url).database)
        wal = Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b""
        data = path.read_bytes()
        return data + wal, {"response": data, "answer": data, "invitation_code": data}, wal
    root = _pg_data_directory(database_url)
    if root is None:
        pytest.skip("the PostgreSQL data directory cannot be read from here (needs root and pg_lsclusters)")
    session.commit()
    # The log first: it is on disk at each commit, and the checkpoint below lets PostgreSQL recycle segments.
    segments = sorted(p for p in (root / "pg_wal").iterdir() if p.is_file() and re.fullmatch(r"[0-9A-F]{24}", p.name))
    current = session.scalar(sa.text("SELECT pg_walfile_name(pg_current_wal_lsn())"))
    every = b"".join(p.read_bytes() for p in (root / "pg_wal").iterdir() if p.is_file())
    ours = b"".join(p.read_bytes() for p in segments if wal_start <= p.name <= current)
    port = str(sa.engine.make_url(database_url).port or 5432)
    subprocess.run(["su", "postgres", "-c", f"psql -p {port} -qc CHECKPOINT"], check=True)  # pages to disk
    tables = {}
    for table in ("response", "answer", "ballot", "draft", "invitation_code", "spent_code", "audit_event"):
        relative = session.scalar(sa.text("SELECT pg_relation_filepath(:t)"), {"t": table})
        tables[table] = b"".join(p.read_bytes() for p in sorted((root / relative).parent.glob(
            Path(relative).name + "*")) if re.fullmatch(r"\d+(\.\d+)?", p.name))
    return b"".join(tables.values()) + every, tables, ours


def test_the_adversary_cannot_order_link_or_read_back(app, issue, session, questionnaire, open_round,
                                                       database_url, tmp_path, monkeypatch):
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    log = AccessLog(app, tmp_path / "access.log")
    cc_cell = invitations.find_cell(session, open_round, "CC-CT", "SNV")
    cc_cell.target = 1000
    ldcp_cell(session, open_round, "TAMKY").target = 1000
    session.commit()
    people = [Respondent(app, code, i) for i, code in enumerate(issue("CC-CT", "SNV", 34))]
    ldcp = [Respondent(app, code, 100 + i) for i, code in enumerate(issue("LĐ-CP", "TAMKY", 8))]
    [leaver] = issue("CC-CT", "SNV", 1)
    as_issued = _code_rows(session, database_url)
    wal_start = _wal_start(session, database_url)  # (from here on, nothing written may name a code)
    q_cc, q_ld = questionnaire("CC-CT"), questionnaire("LĐ-CP")
    text_cc, text_ld = q_cc.text_items[0].code, q_ld.text_items[0].code
    block = re.compile(rf'name="([A-Z]+)-{q_ld.items[0].code}"')  # one block of answers per department
    divisions = re.findall(r'name="division" value="([^"]+)"', ldcp[0].open())
    marker, abandoned = f"DRAFTMARKER{rng.getrandbits(40):x}", f"ABANDONEDMARKER{rng.getrandbits(40):x}"

    # A known order of events: drafts are saved early, submissions interleave with them.
    order = people + ldcp
    rng.shuffle(order)
    savers = set(rng.sample(range(len(order)), 10))
    first_saver = order[min(savers)]
    truth: dict[str, int] = {}
    for position, person in enumerate(order):
        if position in savers:  # saves a draft now, finishes later
            html = person.open()
            if person in ldcp:
                html = person.choose(html, rng.choice(divisions))
            text = marker if person is first_saver else "bản nháp"
            name = f"{block.search(html).group(1)}-{text_ld}" if person in ldcp else text_cc
            person.post(html, {name: text, "action": "save"}, 303)
    drafts_saved = session.scalar(sa.select(sa.func.count()).select_from(Draft))
    assert drafts_saved >= len(savers)  # (opening a form starts a draft too)
    cli = app.test_cli_runner()
    batch_of: dict[int, str] = {}  # response id → the release that brought it
    backups = Backups(cli, database_url, tmp_path)
    backups.take()

    def released(batch: str) -> None:
        """Note the responses a step brought; the adversary backs up after every step that brought some."""
        session.expire_all()
        before = len(batch_of)
        for response_id in session.scalars(sa.select(Response.id)):
            batch_of.setdefault(response_id, batch)
        if len(batch_of) > before:
            backups.take()

    # imports during collection, each of a few submissions of the SNV cell (k = 5), at known places
    at_import = {len(order) // 6: ["csv"], len(order) // 2: ["central"], 5 * len(order) // 6: ["kobo-xlsx", "kobo-csv"]}
    places = [f"{k:03d}.{n}" for k, names in at_import.items() for name in names
              for n in range(3 if name == "csv" else 2)]
    exports = _exports(session, open_round, q_cc, [f"Nhãn R{p}: cần rút ngắn thời gian." for p in places],
                       tmp_path=tmp_path)
    submitted: list[tuple[str, dict]] = []  # (code, answers) as the portal received them
    real_submit = portal.submit

    def submit(session_, access, answers, *args, **kwargs):
        submitted.append((access.invitation.code, answers))
        return real_submit(session_, access, answers, *args, **kwargs)

    monkeypatch.setattr(portal, "submit", submit)

    for k, person in enumerate(order):
        if k in (len(order) // 3, 2 * len(order) // 3):
            out = cli.invoke(args=["round", "release", open_round.code])
            assert out.exit_code == 0, out.output
            released(f"round release before {k}")
        for name in at_import.get(k, []):
            out = cli.invoke(args=["responses", "import", "--round", open_round.code, str(exports[name][0])])
            assert out.exit_code == 0 and "Đã nhập" in out.output, out.output
            released(f"import {name} before {k}")
        if person is first_saver:
            person.device(1)  # resumes on another device, with the same code
        html = person.open()
        if person in ldcp and 'name="division"' in html:
            html = person.choose(html, rng.choice(divisions))
        label = f"Nhãn R{k:03d}: cần rút ngắn thời gian."
        if person in ldcp:
            blocks = sorted(set(block.findall(html)))
            data = {f"{d}-{item}": value for d in blocks
                    for item, value in full_answers(q_ld, value=rng.choice("123"), text=label).items()}
        else:
            data = full_answers(q_cc, value=rng.choice("123"), text=label)
        done = person.post(html, {**data, "action": "submit"}, 200)
        assert "Cảm ơn" in done
        truth[person.code] = k
        released(f"submission {k}")  # (the submission that brings its cell to 2k releases all but k)
    # one more respondent only saves a draft and never comes back; and a few wrong codes are tried
    late = Respondent(app, leaver, 200)
    late.post(late.open(), {text_cc: abandoned, "action": "save"}, 303)
    for _ in range(3):
        Respondent(app, "ABCD-EFGH-JKMN", 300).client.get("/c/ABCD-EFGH-JKMN", follow_redirects=True)
    again = cli.invoke(args=["responses", "import", "--round", open_round.code, str(exports["central"][0])])
    assert again.exit_code == 0 and "Đã nhập 0 phiếu" in again.output, again.output  # (imported once)
    closed = cli.invoke(args=["round", "close", open_round.code])  # the rest is released at close
    assert closed.exit_code == 0, closed.output
    released("close")
    assert len(set(batch_of.values())) >= 4  # (the releases during collection did release something)
    k_min = open_round.settings["min_breakdown"]
    assert len(backups.taken) >= 6
    backups.check_batches(k_min)

    # --- the adversary's material ------------------------------------------------------------------------
    session.expire_all()
    pg = session.get_bind().dialect.name == "postgresql"
    rows = session.execute(sa.text(
        "SELECT r.id, r.uid, r.respondent_key, r.quota_cell_id, r.submitted_on, a.value"
        + (", r.ctid::text AS ctid, r.xmin::text AS xmin" if pg else ", r.rowid AS row_number")
        + " FROM response r JOIN answer a ON a.response_id = r.id AND a.item_code IN (:t1, :t2)"),
        {"t1": text_cc, "t2": text_ld}).all()
    assert len(rows) >= 40 and len({r.respondent_key for r in rows}) == len(order) + len(places)
    true_order = {r.id: float(LABEL.search(r.value).group(1)) for r in rows}
    answers = session.execute(sa.text(
        "SELECT response_id, id" + (", ctid::text AS ctid, xmin::text AS xmin" if pg else ", rowid AS row_number")
        + " FROM answer")).all()
    assert {str(r.submitted_on) for r in rows} == {str(respond.local_today())}  # the day of release, for all
    # every batch holds at least k respondents of its cell
    batch_sizes: dict[tuple, set] = {}
    for r in rows:
        batch_sizes.setdefault((r.quota_cell_id, batch_of[r.id]), set()).add(r.respondent_key)
    assert min(len(keys) for keys in batch_sizes.values()) >= k_min, batch_sizes
    assert not session.scalar(sa.select(sa.func.count()).select_from(Ballot))
    all_bytes, table_bytes, wal = _database_bytes(session, database_url, wal_start)  # as they are: no compaction
    dump = _dump(session, database_url)
    # the searches below do find what they look for
    stored_uids, stored_texts = {r.uid.encode() for r in rows}, {r.value.encode() for r in rows}
    assert all(all_bytes.count(x) for x in stored_uids | stored_texts)
    if pg:  # (SQLite keeps them in its log, in the file or in both)
        assert all(table_bytes["response"].count(u) for u in stored_uids), (
            len(table_bytes["response"]),
            session.scalar(sa.text("SELECT pg_relation_size('response')")),
            session.scalar(sa.text("SELECT pg_relation_filepath('response')")),
            session.scalar(sa.text("SELECT relpersistence FROM pg_class WHERE relname='response'")))
        # (a checkpoint of the shared server may already have recycled the first segments)
        assert sum(bool(wal.count(x)) for x in stored_uids | stored_texts) >= len(stored_uids | stored_texts) / 2

    def ctid(text: str) -> float:
        page, line = text.strip("()").split(",")
        return int(page) * 10_000 + int(line)

    per_answer: dict[int, list] = {}
    for a in answers:
        per_answer.setdefault(a.response_id, []).append(a)
    joins = {
        "response id": lambda r: r.id,
        "response uid": lambda r: int(r.uid, 16),
        "respondent key": lambda r: int(r.respondent_key, 16),
        "smallest answer id": lambda r: min(a.id for a in per_answer[r.id]),
        "mean answer id": lambda r: np.mean([a.id for a in per_answer[r.id]]),
        "response's place in the file": lambda r: table_bytes["response"].find(r.uid.encode()),
        "response's place in the dump": lambda r: dump.find(r.uid),
        "text's place in the dump": lambda r: dump.find(r.value),
        "response's last place in the file": lambda r: table_bytes["response"].rfind(r.uid.encode()),
        "copies of the uid in the table file": lambda r: table_bytes["response"].count(r.uid.encode()),
        "text's place in the table file": lambda r: table_bytes["answer"].find(r.value.encode()),
        "copies of the text in the table file": lambda r: table_bytes["answer"].count(r.value.encode()),
        "uid's first place in the log": lambda r: wal.find(r.uid.encode()),
        "uid's last place in the log": lambda r: wal.rfind(r.uid.encode()),
        "copies of the uid in the log": lambda r: wal.count(r.uid.encode()),
        "text's first place in the log": lambda r: wal.find(r.value.encode()),
        "copies of the text in the log": lambda r: wal.count(r.value.encode()),
    }
    if pg:
        joins.update({
            "response ctid": lambda r: ctid(r.ctid),
            "response xmin": lambda r: int(r.xmin),
            "first answer ctid": lambda r: min(ctid(a.ctid) for a in per_answer[r.id]),
            "answer xmin": lambda r: min(int(a.xmin) for a in per_answer[r.id]),
        })
    else:
        joins.update({
            "response rowid": lambda r: r.row_number,
            "first answer rowid": lambda r: min(a.row_number for a in per_answer[r.id]),
        })
    numbers = np.random.default_rng(seed)
    for name, key in joins.items():
        groups: dict[tuple, list] = {}
        for r in rows:
            groups.setdefault((r.quota_cell_id, batch_of[r.id]), []).append((key(r), true_order[r.id]))
        z = order_z(groups, numbers)
        assert abs(z) < Z_BOUND, f"{name} recovers the submission order (z = {z:.1f}, seed {seed})"

    # The codes: their rows are as they were issued (PostgreSQL: same ctid and xmin; SQLite: same place in
    # the file), nothing written since names one, and what records their spending (marks) cannot be
    # matched to them without the server's secret.
    code_order = {p.code: truth[p.code] for p in order}
    assert _code_rows(session, database_url) == as_issued
    for code in [*code_order, leaver]:
        for spelling in (code, code.replace("-", ""), code.lower()):
            assert spelling.encode() not in wal, f"a code is in the log written after it was issued ({spelling})"
    marks = set(session.scalars(sa.select(SpentCode.mark)))
    assert len(marks) == len(order)
    for code in code_order:  # not an unkeyed digest of the code in any of its spellings
        for spelling in (code, code.replace("-", ""), code.lower()):
            for digest in DIGESTS:
                assert digest(spelling.encode()).hexdigest()[:32] not in marks
    # What is kept of an imported submission's external key cannot be tested against the exports' keys.
    imported_marks = set(session.scalars(sa.select(ImportedSubmission.mark)))
    external = [key for _, keys in exports.values() for key in keys]
    assert len(imported_marks) == len(external)
    for key in external:
        for text in (key, f"uuid:{key}", *(f"{p}:{k}" for p in ("central", "kobo") for k in (key, f"uuid:{key}"))):
            assert not {digest(text.encode()).hexdigest()[:32] for digest in DIGESTS} & imported_marks, text
    # Nor can the answers digest kept on a spent code (for the offline form's resend) be tested against the
    # answers, by anyone holding the database and the server's secret: its key was only in the form page.
    spent = session.execute(sa.select(SpentCode.submission_id, SpentCode.answers_digest)).all()
    assert len(submitted) == len(order) and all(digest for _, digest in spent)
    stored_digests = {digest for _, digest in spent}
    for code, answers in submitted:
        text = json.dumps(answers, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        keys = [SECRET, code, code_mark(SECRET, code), *(sid for sid, _ in spent)]
        guesses = {d(text).hexdigest() for d in DIGESTS} | {
            hmac.new(key.encode(), text, hashlib.sha256).hexdigest() for key in keys}
        assert not guesses & stored_digests, "the answers digest of a spent code can be tested"

    code_rows = session.execute(sa.text(
        "SELECT code, id" + (", ctid::text AS ctid, xmin::text AS xmin" if pg else ", rowid AS row_number")
        + " FROM invitation_code")).all()
    code_joins = {
        "code id": lambda c: c.id,
        "code's place in the table file": lambda c: table_bytes["invitation_code"].find(c.code.encode()),
        "code's last place in the files": lambda c: all_bytes.rfind(c.code.encode()),
        "copies of the code in the files": lambda c: all_bytes.count(c.code.encode()),
        "code's place in the dump": lambda c: dump.find(c.code),
        **({"code ctid": lambda c: ctid(c.ctid), "code xmin": lambda c: int(c.xmin)} if pg
           else {"code rowid": lambda c: c.row_number}),
    }
    for name, key in code_joins.items():
        z = order_z({"spent": [(key(c), code_order[c.code]) for c in code_rows if c.code in code_order]}, numbers)
        assert abs(z) < Z_BOUND, f"{name} recovers the order codes were spent in (z = {z:.1f}, seed {seed})"

    # The audit table: nothing written while people answered names a cell, a response or a code, so
    # there is no timed row to join responses to.
    events = session.scalars(sa.select(AuditEvent).where(AuditEvent.actor == "respondent")).all()
    codes = [p.code for p in order] + [leaver]
    for event in events:
        assert event.object_type not in ("quota_cell", "response")
        assert not any(c in repr((event.object_id, event.old_value, event.new_value)) for c in codes)
    cell_ids = {str(c) for c in session.scalars(sa.select(QuotaCell.id))}
    uids = set(session.scalars(sa.select(Response.uid)))
    assert not any(e.object_id in cell_ids | uids for e in events)

    # The access log: every request is there, with its time, address and user agent, but no code (in any
    # spelling) and no answer went to an address that names one.
    lines = log.lines()
    assert sum('"POST /phieu ' in line for line in lines) >= len(order) + len(savers)
    assert any('"GET /c/…' in line for line in lines)
    for line in lines:
        assert not any(c in line or c.replace("-", "") in line for c in codes + ["ABCD-EFGH-JKMN"]), line
        assert not re.search(r'"POST /c/', line), line
        # no response size either: a form page's size tells its agency, and so its cell
        assert re.search(r'" \d{3} - "', line), line
    # the log's order of POSTs is the true order; it cannot be joined to anything stored (above)

    # Drafts: the marker text only a draft ever held, and the one of a draft still waiting, are nowhere in
    # the files (SQLite: database and write-ahead log; PostgreSQL: the tables' heap files and pg_wal).
    for text in (marker, abandoned):
        assert text.encode() not in all_bytes, f"{text} readable in the database files"
    assert "Nhãn R000".encode() in all_bytes  # the search does look at the stored text

    # Nothing of the exports but their answers is in the files or the dump: no external key, submitter,
    # device or submission time.
    for text in [*external, "Nguyễn Văn A", "collect:abc123", "2023-09-12", "08:41:07", "15:41:07"]:
        assert text.encode() not in all_bytes and text not in dump, f"{text} from an export is stored"


def _receipt_rows(session) -> set[tuple]:
    """Every receipt row with where it is: PostgreSQL its ctid and xmin, SQLite its rowid."""
    session.commit()
    where = "ctid::text || '/' || xmin::text" if session.get_bind().dialect.name == "postgresql" else "rowid"
    return set(session.execute(sa.text(f"SELECT digest, quota_cell_id, field, {where} FROM receipt_code")).all())


def test_the_adversary_of_a_citizens_round(app, session, citizens_round, make_user, database_url,  # noqa: F811
                                          tmp_path):
    """A citizens' round: households' paper sheets keyed and sealed under their investigator, and receipt codes
    from result slips spent online, interleaved in a known order, with a backup after every release. Every
    backup shows no new response of a cell or at least k respondents; a response names its investigator only
    if at least k of that investigator's sheets of its quota cell are in (one investigator has many sheets in
    the round but one in another cell: that one is pooled), the others are pooled under ``*`` in a group of
    at least k, the close filling a cell's small pool with the cell's smallest named group; the receipt rows
    are exactly as issued, no receipt code is in the files or a dump, and what records a code's spending is
    neither its stored digest nor an unkeyed digest of it."""
    rnd, rng = citizens_round, random.Random()
    k = ballots.min_group(rnd.settings)
    clerk = make_user("clerk")
    for name in ("dtv01", "dtv02", "dtv03", "dtv04", "dtv05"):
        make_user("clerk", username=name)
    keys = app.config["SHEET_SIGNING_KEYS"]
    named = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, agency_code="STP"),
                                investigator="dtv01")[:2 * k + 2]
    pooled = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, agency_code="SYT"))[:7]
    for n, name in enumerate(("dtv02", "dtv03", "dtv04")):  # two sheets each: fewer than k apiece
        sheets.assign_investigator(session, rnd, [s.serial for s in pooled[2 * n:2 * n + 2]], name, keys)
    sheets.assign_investigator(session, rnd, [pooled[6].serial], "dtv01", keys)  # k or more in the round, one here
    # SCT: k sheets of DTV-05 and one of DTV-02, whose pool of one the close fills with DTV-05's k
    filled = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, agency_code="SCT"))[:k + 1]
    sheets.assign_investigator(session, rnd, [s.serial for s in filled[:k]], "dtv05", keys)
    sheets.assign_investigator(session, rnd, [filled[k].serial], "dtv02", keys)
    slips = receipts.issue(session, rnd, secret=SECRET, base_url="https://danang.example", agency="HAICHAU",
                           field="3", dossiers=[f"000.00.23.H17-2609{n:02d}" for n in range(2 * k + 2)])
    session.commit()
    issued = _receipt_rows(session)
    codes = [slip.code for slip in slips]
    events = [("sheet", s) for s in named + pooled + filled] + [("receipt", c) for c in codes]
    rng.shuffle(events)
    backups = Backups(app.test_cli_runner(), database_url, tmp_path)
    backups.take()
    stored = 0
    today = rounds.local_today()
    for kind, what in events:
        if kind == "sheet":
            key_sheet(session, what, clerk)
        else:
            access = portal.open_code(session, what, today=today, secret=SECRET, start=True)
            portal.submit(session, access, {"HAICHAU": citizen_answers()}, portal.new_submission_id(), today=today,
                          answers_key=portal.new_submission_id())
        session.commit()
        if session.scalar(sa.select(sa.func.count()).select_from(Response)) > stored:
            stored = session.scalar(sa.select(sa.func.count()).select_from(Response))
            backups.take()
    assert stored, "nothing was released during collection"
    rounds.close(session, rnd, secret=SECRET)
    session.commit()
    backups.take()
    backups.check_batches(k)

    groups = {(agency, name): n for agency, name, n in session.execute(
        sa.select(Agency.code, Response.investigator, sa.func.count(sa.distinct(Response.respondent_key)))
        .join(QuotaCell, QuotaCell.id == Response.quota_cell_id).join(Agency, Agency.id == QuotaCell.agency_id)
        .group_by(Agency.code, Response.investigator))}
    assert groups == {("STP", "dtv01"): len(named), ("SYT", POOLED_INVESTIGATORS): len(pooled),
                      ("SCT", POOLED_INVESTIGATORS): len(filled), ("HAICHAU", None): len(codes)}
    assert all(n >= k for n in groups.values())  # no (cell, name) group and no cell's pool below k
    assert not session.scalar(sa.select(sa.func.count()).select_from(Response).where(Response.sheet_id.is_not(None)))

    assert _receipt_rows(session) == issued  # spending wrote nothing on a receipt row
    dump = _dump(session, database_url)
    files = b""
    if session.get_bind().dialect.name == "sqlite":
        path = Path(sa.engine.make_url(database_url).database)
        files = path.read_bytes() + (Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b"")
    digests = {row[0] for row in issued}
    marks = set(session.scalars(sa.select(SpentCode.mark)))
    assert len(marks) == len(codes) and not marks & digests
    for code in codes:
        for spelling in (code, code.replace("-", ""), code.lower()):
            assert spelling not in dump and spelling.encode() not in files, f"a receipt code is stored ({spelling})"
            assert not {d(spelling.encode()).hexdigest()[:32] for d in DIGESTS} & (marks | digests)
