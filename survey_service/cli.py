"""The ``survey-service`` command: one click group per noun. Commands parse arguments, call one
service, commit, and print what happened. The services that load pandas, SciPy, statsmodels, matplotlib or
ReportLab (scoring, exports, imports, printing, invitation codes and the simulation, which issues them) are
imported by the commands that use them, so that every other command, and ``--help``, starts without them.

The application behind the commands is built without requiring secrets, so ``--help`` and the commands that
only validate files work anywhere; a command that needs a secret says so (:func:`needs_secrets`)."""
from __future__ import annotations

import functools
import json
import sys
from datetime import date
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext

from survey_service import migrate
from survey_service import questionnaires as qn
from survey_service.config import MissingSecret, check_secrets
from survey_service.dates import DateError, parse_iso_date, vietnam_today
from survey_service.db import compact, get_engine, get_session
from survey_service.models import CodeStatus, Role, SheetState, StaffUser
from survey_service.questionnaires import xlsform as workbooks
from survey_service.services import backup, ballots, demo, rounds, sheets, users, xlsform
from survey_service.services.sealing import KeyFileError, OwnerKey
from survey_service.vietnamese import number


#: Links printed from the command line when ``PUBLIC_BASE_URL`` is not set (the demo's address).
CLI_BASE_URL = "http://127.0.0.1:5000"


def _public_base_url() -> str:
    """``PUBLIC_BASE_URL``, or the demo's address with a warning: the CLI has no request to take it from."""
    configured = current_app.config["PUBLIC_BASE_URL"]
    if configured:
        return configured
    click.secho(f"PUBLIC_BASE_URL chưa được đặt: liên kết và mã QR in ra trỏ tới {CLI_BASE_URL}. "
                "Đặt SURVEY_PUBLIC_BASE_URL để in địa chỉ thật.", fg="yellow", err=True)
    return CLI_BASE_URL


def fail(message: str) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(1)


def needs_secrets(*names: str):
    """Stop a command with one line naming the setting when a secret it uses is not configured."""
    def decorate(command):
        @functools.wraps(command)
        def run(*args, **kwargs):

            try:
                check_secrets(current_app.config, names)
            except MissingSecret as exc:
                fail(f"LỖI Lệnh này cần thiết lập bí mật {', '.join(exc.missing)}, chưa được đặt: đặt trong "
                     f"instance/config.py hoặc biến môi trường {' / '.join('SURVEY_' + k for k in exc.missing)}"
                     + (' (SHEET_SIGNING_KEYS là danh sách JSON, ví dụ \'["key-2024", "key-2023"]\').'
                        if "SHEET_SIGNING_KEYS" in exc.missing else "."))
            return command(*args, **kwargs)
        return run
    return decorate


def _questionnaire_dir(round_dir: str, given: str | None) -> Path:
    """The questionnaires a round is read with: ``--questionnaires``, else the questionnaire directory the
    round sits in (``<dir>/rounds/<CODE>/``), else QUESTIONNAIRE_DIR."""
    if given:
        return Path(given)
    root = Path(round_dir).resolve().parent.parent
    if Path(round_dir).resolve().parent.name == "rounds" and (root / "forms.yaml").is_file():
        return root
    return Path(current_app.config["QUESTIONNAIRE_DIR"])


def _earlier_rounds() -> list[Path]:
    """Where the rounds an agency continues are looked for, besides next to the round itself."""
    return [Path(current_app.config["QUESTIONNAIRE_DIR"]) / "rounds"]


# --- db ------------------------------------------------------------------------------------------
@click.group("db")
def db_group():
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision):
    """Apply migrations up to REVISION."""

    migrate.upgrade(current_app.config["DATABASE_URL"], revision, secret_key=current_app.config.get("SECRET_KEY"))
    click.echo(f"Đã nâng cấp cơ sở dữ liệu đến phiên bản {revision}.")


@db_group.command("compact")
@with_appcontext
def db_compact():
    """Rewrite the response tables' files so that no old row version is left (run after a round closes)."""

    compact(get_engine())
    click.echo("Response tables compacted.")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision):
    """Revert migrations down to REVISION (``base`` empties the database)."""

    migrate.downgrade(current_app.config["DATABASE_URL"], revision, secret_key=current_app.config.get("SECRET_KEY"))
    click.echo(f"Đã hạ cơ sở dữ liệu về phiên bản {revision}.")


# --- questionnaires ------------------------------------------------------------------------------
@click.group("questionnaires")
def questionnaires_group():
    """Questionnaire definitions (questionnaires/*.yaml)."""


@questionnaires_group.command("check")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Defaults to QUESTIONNAIRE_DIR.")
@with_appcontext
def questionnaires_check(directory):
    """Validate every questionnaire file; one line per form; non-zero exit on any error."""

    directory = directory or current_app.config["QUESTIONNAIRE_DIR"]
    try:
        forms = qn.load_questionnaires(directory)
    except qn.QuestionnaireError as exc:
        fail(f"LỖI {exc}")
    for code, q in sorted(forms.items(), key=lambda kv: (kv[1].channel, kv[0])):
        click.echo(f"{code:<7} {q.channel:<6} {len(q.scale_items):>2} câu đánh giá + {len(q.text_items)} câu mở  "
                   f"đánh giá: {q.rates:<11} phiên bản {q.version}  {q.title}")
    click.echo(f"{len(forms)} phiếu hợp lệ.")


@questionnaires_group.command("xlsform")
@click.option("--round", "round_code", required=True, help="Round code, e.g. QNA-2023.")
@click.option("--form", "form_code", help="Only this form (default: every form of the round).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write into.")
@with_appcontext
def questionnaires_xlsform(round_code, form_code, out_dir):
    """Write each form version of a round as an XLSForm workbook for ODK Collect and KoboToolbox."""
    session = get_session()
    rnd = _round_or_fail(session, round_code)
    try:
        paths = xlsform.export_round(session, rnd, Path(out_dir), form_code)
    except xlsform.XlsformError as exc:
        fail(f"LỖI {exc}")
    for path in paths:
        click.echo(str(path))


@questionnaires_group.command("from-xlsform")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Write the form file here (default: stdout).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Defaults to QUESTIONNAIRE_DIR.")
@with_appcontext
def questionnaires_from_xlsform(file, out_file, directory):
    """Read an XLSForm made by `questionnaires xlsform` back into a form file for review; its lists must be
    the directory's scales with the same options, its groups the directory's criteria."""
    directory = Path(directory or current_app.config["QUESTIONNAIRE_DIR"])
    try:
        definition = workbooks.definition_from_workbook(Path(file))
        q = qn.Questionnaire.from_definition(definition, source=file)
        scales, criteria = qn.load_scales(directory / "scales.yaml"), qn.load_criteria(directory / "criteria.yaml")
    except qn.QuestionnaireError as exc:
        fail(f"LỖI {exc}")
    for code, scale in q.scales.items():
        if code not in scales or scales[code] != scale:
            fail(f"LỖI {Path(file).name}: danh sách '{code}' không phải thang đo {code} của {directory} "
                 "(cùng mã, cùng phương án).")
    for code, criterion in q.criteria.items():
        if code not in criteria or criteria[code] != criterion:
            fail(f"LỖI {Path(file).name}: nhóm '{code}' không phải lĩnh vực của {directory}.")
    text = workbooks.form_yaml(definition)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
        click.echo(f"{q.code} phiên bản {q.version} → {out_file}")
    else:
        click.echo(text, nl=False)


# --- round ---------------------------------------------------------------------------------------
@click.group("round")
def round_group():
    """Survey rounds (questionnaires/rounds/<CODE>/)."""


_QUESTIONNAIRES_OPTION = click.option(
    "--questionnaires", "questionnaire_dir", type=click.Path(exists=True, file_okay=False),
    help="Questionnaire directory of the forms (default: the one the round sits in, else QUESTIONNAIRE_DIR).")


@round_group.command("check")
@click.argument("round_dir", type=click.Path(exists=True, file_okay=False))
@_QUESTIONNAIRES_OPTION
@with_appcontext
def round_check(round_dir, questionnaire_dir):
    """Check a round directory exactly as `round load` does, without a database; non-zero exit on any error."""

    questionnaires = _questionnaire_dir(round_dir, questionnaire_dir)
    try:
        r = rounds.check_round(round_dir, questionnaires, earlier_rounds=_earlier_rounds())
    except qn.QuestionnaireError as exc:
        fail(f"LỖI {exc}")
    for warning in rounds.wording_warnings(r, questionnaires):
        click.secho(f"CẢNH BÁO {warning}", fg="yellow", err=True)
    counts = {k.code: len(r.agencies_of_kind(k.code)) for k in r.kinds}
    click.echo(f"Đợt {r.code}: {r.name} ({r.province_type} {r.province}, {r.opens_on:%d/%m/%Y} – "
               f"{r.closes_on:%d/%m/%Y}; tổ chức: {r.organiser})")
    for kind in r.kinds:
        click.echo(f"  {kind.code:<12} {counts[kind.code]:>4}  {kind.plural}")
    paper = sum(q.target for q in r.quotas if q.channel == "paper")
    continued = sum(1 for a in r.agencies if a.continues)
    click.echo(f"  {len(r.form_codes)} phiếu, {len(r.quotas)} ô chỉ tiêu ({paper} phiếu giấy), "
               f"{continued} cơ quan kế tục cơ quan của đợt trước, {len(r.targets)} mục tiêu")
    if r.round_kind == "citizens":
        m = r.methodology
        definition = "chính thức" if m["definition"] == "official" else "làm việc"
        click.echo(f"  khảo sát người dân: {len(m['elements'])} yếu tố, câu hài lòng chung {m['overall']}, "
                   f"chỉ số theo định nghĩa {definition}, "
                   f"{sum(p['population'] for p in m['populations'].values())} người trong khung mẫu")
    click.echo(f"Đợt {r.code} hợp lệ.")


@round_group.command("new")
@click.argument("round_code")
@click.option("--province", required=True, help='The province\'s name, e.g. "Hưng Yên".')
@click.option("--unit", required=True, type=click.Choice(["tỉnh", "thành phố"]), help="Its kind of unit.")
@click.option("--from", "source", default="DNG-2026", show_default=True,
              help="The bundled round to start from (QNA-2023: with districts; DNG-2026: communes only; "
                   "DNG-HL-2026: a citizens' satisfaction survey).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory to write ROUND_CODE/ in.")
@with_appcontext
def round_new(round_code, province, unit, source, out):
    """Write a starting round directory ROUND_CODE for a province from a bundled round, to edit and check."""

    try:
        target = rounds.new_round_dir(Path(current_app.config["QUESTIONNAIRE_DIR"]) / "rounds" / source, out,
                                      round_code, province, unit)
    except rounds.RoundError as exc:
        fail(f"LỖI {exc}")
    click.echo(f"Đã tạo đợt {round_code} ({unit} {province}) tại {target}, từ đợt {source}. "
               f"Thay {rounds.to_replace(target)} bằng của {unit}, rồi chạy: "
               f"survey-service round check {target}")


@round_group.command("load")
@click.argument("round_dir", type=click.Path(exists=True, file_okay=False))
@_QUESTIONNAIRES_OPTION
@with_appcontext
def round_load(round_dir, questionnaire_dir):
    """Load or update a round from its directory, in one transaction."""

    session = get_session()
    try:
        report = rounds.load_round(session, round_dir, _questionnaire_dir(round_dir, questionnaire_dir),
                                   earlier_rounds=_earlier_rounds())
    except (qn.QuestionnaireError, rounds.RoundError) as exc:
        session.rollback()
        fail(f"LỖI {exc}\nKhông nạp gì.")
    if not report.changed:
        session.rollback()
        click.echo(f"Đợt {report.round_code} không thay đổi; không có gì để nạp.")
        return
    session.commit()
    if report.created:
        click.echo(f"Đã nạp đợt {report.round_code}.")
    else:
        click.echo(f"Đã cập nhật đợt {report.round_code}:")
        for change in report.changes:
            click.echo(f"  - {change}")


class IsoDate(click.ParamType):
    """A date option written exactly YYYY-MM-DD (``click.DateTime`` reads it with ``strptime``, which also
    takes ``2026-1-5`` and digits of other scripts)."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):

        if isinstance(value, date):
            return value
        try:
            return parse_iso_date(value)
        except DateError as exc:
            self.fail(f"{value!r} {exc}.", param, ctx)


def _round_or_fail(session, round_code: str):
    """The round named ``round_code``; exits with a message when there is none."""

    rnd = rounds.get_round(session, round_code)
    if rnd is None:
        fail(f"Không có đợt khảo sát {round_code}.")
    return rnd


@round_group.command("schedule")
@click.argument("round_code")
@click.option("--opens", "opens_on", type=IsoDate(), required=True)
@click.option("--closes", "closes_on", type=IsoDate(), required=True)
@with_appcontext
def round_schedule(round_code, opens_on, closes_on):
    """Set the collection window of round ROUND_CODE (also reopens a round closed early)."""

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    try:
        rounds.schedule(session, rnd, opens_on, closes_on, actor="cli")
    except rounds.RoundError as exc:
        fail(str(exc))
    session.commit()
    click.echo(f"Đợt {round_code} nhận phiếu từ {rnd.opens_on:%d/%m/%Y} đến hết {rnd.closes_on:%d/%m/%Y}.")


_KEY_OPTION = click.option(
    "--key", "key_path", type=click.Path(exists=True, dir_okay=False),
    help="An owner-sealed round: the owner's private key file (written by 'round seal-key --new').")
_PASSPHRASE_OPTION = click.option(
    "--passphrase", envvar="SURVEY_BALLOT_KEY_PASSPHRASE", default=None,
    help="The key file's passphrase (asked for when not given; or SURVEY_BALLOT_KEY_PASSPHRASE).")


def _owner_key(rnd, key_path: str | None, passphrase: str | None):
    """The owner's key read from ``key_path`` for an owner-sealed round (None without a file); exits with
    the reason when the file cannot be read."""

    if key_path is None:
        return None
    if not rnd.ballot_public_key:
        fail(f"Đợt {rnd.code} niêm phong phiếu bằng khóa của máy chủ, không dùng tệp khóa (--key).")
    if passphrase is None:
        passphrase = click.prompt("Mật khẩu của tệp khóa", hide_input=True)
    try:
        key = OwnerKey.from_file(Path(key_path).read_bytes(), passphrase, rnd.code)
    except KeyFileError as exc:
        fail(str(exc))
    if key.public_key != rnd.ballot_public_key:
        fail(f"Tệp khóa {key_path} không phải khóa của đợt {rnd.code}.")
    return key


@round_group.command("close")
@click.argument("round_code")
@_KEY_OPTION
@_PASSPHRASE_OPTION
@with_appcontext
@needs_secrets("SECRET_KEY")
def round_close(round_code, key_path, passphrase):
    """Close collection of round ROUND_CODE now and release every sealed ballot into the responses (an
    owner-sealed round: only with its key; without it they wait for 'round release --key')."""

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    owner_key = _owner_key(rnd, key_path, passphrase)
    try:
        released = rounds.close(session, rnd, secret=current_app.config["SECRET_KEY"], owner_key=owner_key,
                                actor="cli")
    except rounds.RoundError as exc:
        session.rollback()
        fail(str(exc))
    session.commit()
    click.echo(f"Đã đóng đợt {round_code}; {released.ballots} phiếu trực tuyến đang niêm phong đã được đưa vào dữ liệu."
               + (" " + ballots.waiting_note(released.waiting, owner_sealed=True) if released.waiting else ""))


@round_group.command("release")
@click.argument("round_code")
@_KEY_OPTION
@_PASSPHRASE_OPTION
@with_appcontext
@needs_secrets("SECRET_KEY")
def round_release(round_code, key_path, passphrase):
    """Release round ROUND_CODE's sealed ballots that are due (per cell, in batches of at least the round's
    minimum group; all of them once the round is over) into the responses."""

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    owner_key = _owner_key(rnd, key_path, passphrase)
    released = ballots.release(session, rnd, ballots.opener(rnd, current_app.config["SECRET_KEY"], owner_key),
                               today=rounds.local_today())
    session.commit()
    click.echo(f"Đợt {round_code}: {released.ballots} phiếu trực tuyến ({released.responses} phiếu trả lời) "
               "đã được đưa vào dữ liệu. " + ballots.waiting_note(released.waiting,
                                                       owner_sealed=bool(rnd.ballot_public_key and not owner_key)))
    if released.unreadable:
        fail(rounds.unreadable_message(released.unreadable))


@round_group.command("seal-key")
@click.argument("round_code")
@click.option("--public-key", default=None, help="The owner's public key (base64), made on the owner's own computer.")
@click.option("--new", "new_path", type=click.Path(dir_okay=False), default=None,
              help="Make a new key pair here and write the private half to this file (then take it off the server).")
@click.option("--passphrase", envvar="SURVEY_BALLOT_KEY_PASSPHRASE", default=None,
              help="With --new: the passphrase that protects the file (asked for when not given).")
@with_appcontext
def round_seal_key(round_code, public_key, new_path, passphrase):
    """Seal round ROUND_CODE's ballots to its owner's key: the server keeps only the public half, so neither it
    nor a copy of it or of its backups opens a ballot until the owner gives the private half at release."""

    if bool(public_key) == bool(new_path):
        fail("Chọn đúng một trong hai: --public-key (khóa công khai đã có) hoặc --new TỆP (tạo cặp khóa mới).")
    session = get_session()
    rnd = _round_or_fail(session, round_code)
    if new_path:
        if Path(new_path).exists():
            fail(f"Tệp {new_path} đã có; chọn tên khác để không ghi đè một khóa.")
        if passphrase is None:
            passphrase = click.prompt("Mật khẩu bảo vệ tệp khóa", hide_input=True, confirmation_prompt=True)
        if len(passphrase) < 12:
            fail("Mật khẩu của tệp khóa cần ít nhất 12 ký tự.")
        key = OwnerKey.generate(rnd.code)
        public_key = key.public_key
    try:
        rounds.seal_to_owner(session, rnd, public_key, actor="cli")
    except rounds.RoundError as exc:
        session.rollback()
        fail(str(exc))
    if new_path:
        Path(new_path).write_bytes(key.to_file(passphrase))
        Path(new_path).chmod(0o600)
    session.commit()
    click.echo(f"Phiếu trực tuyến của đợt {round_code} từ nay được niêm phong bằng khóa công khai {public_key}."
               + (f" Khóa riêng đã ghi vào {new_path}: hãy chuyển tệp này khỏi máy chủ và giữ cùng mật khẩu; "
                  "thiếu nó thì không mở được phiếu." if new_path else ""))


# --- users ---------------------------------------------------------------------------------------
@click.group("users")
def users_group():
    """Staff accounts."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--full-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def users_create(username, role, full_name, password_stdin):
    """Create a staff account; the password comes from a prompt or standard input."""

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Mật khẩu", hide_input=True, confirmation_prompt="Nhập lại mật khẩu")
    session = get_session()
    try:
        user = users.create_user(session, username, password, role, full_name=full_name)
    except users.UserError as exc:
        session.rollback()
        fail(str(exc))
    session.commit()
    click.echo(f"Đã tạo tài khoản {user.username} ({user.role.value}).")


@users_group.command("token")
@click.argument("username")
@with_appcontext
def users_token(username):
    """Issue a new API token for a staff account and print it (shown only once); its expiry goes to stderr."""


    session = get_session()
    user = session.scalar(sa.select(StaffUser).where(StaffUser.username == username.lower()))
    if user is None:
        fail(f"Không có tài khoản {username}.")
    days = current_app.config["API_TOKEN_DAYS"]
    token = users.issue_api_token(session, user, days=days, actor="cli")
    session.commit()
    click.echo(token)
    click.echo(f"Mã dùng được {days} ngày, đến {user.api_token_expires_at:%d/%m/%Y %H:%M} (UTC).", err=True)


# --- sheets --------------------------------------------------------------------------------------
@click.group("sheets")
def sheets_group():
    """Printed paper sheets: print, reprint, record returns, ledger status."""


def _write_pdf(session, batch, out: Path) -> None:
    from survey_service.services import printing


    pdf = printing.sheets_pdf(session, batch, base_url=_public_base_url(),
                              signing_keys=current_app.config["SHEET_SIGNING_KEYS"])
    out.write_bytes(pdf)


@sheets_group.command("print")
@click.option("--round", "round_code", required=True, help="Round code, e.g. QNA-2023.")
@click.option("--form", "form_code", help="Only this form code (e.g. LĐH-CH).")
@click.option("--agency", "agency_code", help="Only the quota cell of this agency code.")
@click.option("--extra", type=int, default=0, show_default=True, help="Spare sheets per cell beyond the target.")
@click.option("--again", is_flag=True, help="Print the issued, not yet returned sheets again (no new serials).")
@click.option("--investigator", help="Citizens' rounds: the staff account of the Post Office investigator the new "
              "sheets are handed to.")
@click.option("--commune", help="Citizens' rounds: the commune (agency code) whose sampled households get the new "
              "sheets, whatever agency they rate.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True)
@with_appcontext
@needs_secrets("SHEET_SIGNING_KEYS")
def sheets_print(round_code, form_code, agency_code, extra, again, investigator, commune, out):
    """Issue the sheets each paper quota cell still needs (up to its target) and write them to one PDF."""

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    try:
        plans = sheets.paper_cells(session, rnd, form_code=form_code and rounds.form_code_for(rnd, form_code),
                                   agency_code=agency_code)
        batch = (sheets.issued_sheets(session, plans) if again
                 else sheets.issue_sheets(session, rnd, plans, extra=extra, today=rounds.local_today(),
                                          actor="cli", investigator=investigator, commune=commune))
    except sheets.SheetError as exc:
        session.rollback()
        fail(str(exc))
    if not batch:
        session.rollback()
        fail("Không có phiếu nào để in: các ô đã chọn đã đủ phiếu. Dùng --again để in lại phiếu đã phát, "
             "hoặc --extra N để in thêm phiếu dự phòng.")
    _write_pdf(session, batch, out)
    session.commit()
    click.echo(f"{'Đã in lại' if again else 'Đã phát'} {len(batch)} phiếu "
               f"({batch[0].serial} .. {batch[-1].serial}) vào {out}.")


@sheets_group.command("reprint")
@click.argument("serial")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True)
@with_appcontext
@needs_secrets("SHEET_SIGNING_KEYS")
def sheets_reprint(serial, out):
    """Void a sheet that was not keyed and print its replacement under a new serial."""

    session = get_session()
    try:
        old = sheets.get_by_serial(session, serial, lock=True)
        new = sheets.reprint(session, old, today=rounds.local_today(), by=None, actor="cli")
    except sheets.SheetError as exc:
        session.rollback()
        fail(str(exc))
    _write_pdf(session, [new], out)
    session.commit()
    click.echo(f"Đã hủy phiếu {sheets.normalize_serial(serial)}; phiếu thay thế {new.serial} ở {out}.")


@sheets_group.command("assign")
@click.option("--round", "round_code", required=True)
@click.option("--investigator", required=True, help="The Post Office investigator's staff account, e.g. dtv07.")
@click.argument("codes", nargs=-1, required=True)
@with_appcontext
@needs_secrets("SHEET_SIGNING_KEYS")
def sheets_assign(round_code, investigator, codes):
    """Record the investigator who hands out these sheets (serials or scanned URLs; all or nothing)."""
    from survey_service.services import sheets

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    try:
        found = sheets.assign_investigator(session, rnd, list(codes), investigator,
                                           current_app.config["SHEET_SIGNING_KEYS"], actor="cli")
    except sheets.SheetError as exc:
        session.rollback()
        fail(str(exc))
    session.commit()
    click.echo(f"Đã giao {len(found)} phiếu cho điều tra viên {found[0].investigator}.")


@sheets_group.command("return")
@click.option("--round", "round_code", required=True)
@click.argument("codes", nargs=-1, required=True)
@with_appcontext
@needs_secrets("SHEET_SIGNING_KEYS")
def sheets_return(round_code, codes):
    """Record sheets as returned, by serial or scanned URL; all or nothing."""

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    try:
        report = sheets.record_returns(session, rnd, list(codes), current_app.config["SHEET_SIGNING_KEYS"],
                                       today=rounds.local_today(), by=None, actor="cli")
    except sheets.SheetError as exc:
        session.rollback()
        fail(str(exc))
    if report.errors:
        session.rollback()
        fail("Không ghi nhận phiếu nào:\n" + "\n".join(f"  {code}: {message}" for code, message in report.errors))
    session.commit()
    click.echo(f"Đã ghi nhận {len(report.recorded)} phiếu thu về"
               + (f"; đã ghi nhận từ trước: {', '.join(s.serial for s in report.already)}." if report.already else "."))


@sheets_group.command("read")
@click.option("--round", "round_code", required=True)
@click.option("--clerk", "clerk_name", help="Key sheets read in full with nothing uncertain under this clerk "
              "account; without it they wait for a clerk's confirmation on the web page.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
@needs_secrets("SHEET_SIGNING_KEYS", "SECRET_KEY")
def sheets_read(round_code, clerk_name, files):
    """Read photos or scanned PDFs of sheets printed to be read: one JSON line per page, with the answer
    decided per item (null = blank, "review" = for the clerk to confirm) or why the page was refused."""
    from survey_service.services import reading

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    clerk = None
    if clerk_name:
        clerk = session.scalar(sa.select(StaffUser).where(StaffUser.username == clerk_name))
        if clerk is None or clerk.role is not Role.CLERK:
            fail(f"Không có nhân viên nhập phiếu (clerk) tên {clerk_name}.")
    refused = 0
    for path in files:
        for result in reading.read_file(session, rnd, path.name, path.read_bytes(),
                                        keys=current_app.config["SHEET_SIGNING_KEYS"],
                                        secret=current_app.config["SECRET_KEY"], clerk=clerk):
            session.commit()
            refused += bool(result.refused)
            click.echo(json.dumps(result.as_json(), ensure_ascii=False))
    if refused:
        click.secho(f"{refused} trang bị từ chối: hãy chụp hoặc quét lại các trang đó.", fg="yellow", err=True)


@sheets_group.command("status")
@click.option("--round", "round_code", required=True)
@with_appcontext
def sheets_status(round_code):
    """Sheets per form and ledger state."""

    session = get_session()
    counts = sheets.state_counts(session, _round_or_fail(session, round_code))
    states = list(SheetState)
    click.echo(f"{'Mẫu phiếu':<10}" + "".join(f"{sheets.STATE_LABELS[s]:>13}" for s in states))
    for form_code, by_state in sorted(counts.items()):
        click.echo(f"{form_code:<10}" + "".join(f"{number(by_state.get(s, 0)):>13}" for s in states))


# --- codes ---------------------------------------------------------------------------------------
@click.group("codes")
def codes_group():
    """Invitation codes for the online forms."""


@codes_group.command("issue")
@click.option("--round", "round_code", required=True, help="Round code, e.g. QNA-2023.")
@click.option("--form", "form_code", required=True, help="Form code, e.g. CC-CT.")
@click.option("--agency", "agency_code", default=None, help="Agency of the quota cell (LĐ-CP: the district).")
@click.option("--count", type=click.IntRange(1), required=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True,
              help="CSV file to write (columns code, url, ...).")
@click.option("--pdf", type=click.Path(dir_okay=False, writable=True), help="Also write printable slips with QR codes.")
@with_appcontext
def codes_issue(round_code, form_code, agency_code, count, out, pdf):
    """Issue COUNT new codes for a quota cell and write them to a CSV (and optionally a PDF)."""
    from survey_service.services import invitations


    session = get_session()
    rnd = _round_or_fail(session, round_code)
    try:
        rounds.check_collecting(rnd, rounds.local_today())  # its respondents could not answer any more
    except rounds.RoundError as exc:
        fail(f"LỖI {exc} Không phát mã nào.")
    try:
        cell = invitations.find_cell(session, rnd, form_code, agency_code)
        batch = invitations.issue_codes(session, cell, count, today=rounds.local_today(), actor="cli")
    except invitations.InvitationError as exc:
        session.rollback()
        fail(str(exc))
    session.commit()
    base_url = _public_base_url()
    fresh = {c.id: CodeStatus.UNUSED for c in batch.codes}  # (just issued: none used yet)
    Path(out).write_text(invitations.batch_csv(batch, base_url, fresh), encoding="utf-8")
    if pdf:
        Path(pdf).write_bytes(invitations.batch_pdf(batch, base_url, fresh, organiser=rnd.organiser,
                                                    round_name=rnd.name))
    click.echo(f"Đã phát {count} mã cho {invitations.cell_label(cell)} (lô {batch.id}) vào {out}"
               + (f" và {pdf}" if pdf else "") + ".")


# --- analysis ------------------------------------------------------------------------------------
@click.group("analysis")
def analysis_group():
    """Scoring and estimation of a round's results."""


def _release_due_ballots(session, rnd) -> None:
    """Sealed ballots of past days into responses before the results are computed; says what still waits."""
    released = ballots.release(session, rnd, ballots.opener(rnd, current_app.config["SECRET_KEY"]),
                               today=rounds.local_today())
    session.commit()
    if released.waiting or released.unreadable:
        click.echo(ballots.waiting_note(released.waiting, owner_sealed=bool(rnd.ballot_public_key)) + (
            " " + rounds.unreadable_message(released.unreadable) if released.unreadable else ""))


@analysis_group.command("run")
@click.option("--round", "round_code", required=True, help="Round code, e.g. QNA-2023.")
@click.option("--out", "outputs", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Output file; the format follows the extension (.xlsx, .csv, .sav). Repeatable.")
@click.option("--answers", "answers_path", type=click.Path(dir_okay=False),
              help="Also write the tidy long CSV of every counted answer with its weight.")
@click.option("--responses", "responses_path", type=click.Path(dir_okay=False),
              help="Also write the response-level SPSS .sav (one case per sheet × agency, value labels).")
@with_appcontext
@needs_secrets("SECRET_KEY")
def analysis_run(round_code, outputs, answers_path, responses_path):
    """Compute a round's results from its stored responses and write them (sealed ballots of past days are
    released first)."""
    from survey_service.services import exports, results, rounds

    for out in outputs:
        if Path(out).suffix.lower() not in exports.FORMATS:
            fail(f"Không hỗ trợ định dạng '{Path(out).suffix}' ({out}); dùng: {', '.join(exports.FORMATS)}.")
    if responses_path and Path(responses_path).suffix.lower() != ".sav":
        fail(f"--responses ghi tệp SPSS: tên tệp phải có đuôi .sav ({responses_path}).")
    session = get_session()
    rnd = _round_or_fail(session, round_code)
    _release_due_ballots(session, rnd)
    if rounds.is_citizens(rnd):
        return _citizens_run(session, rnd, outputs, answers_path or responses_path)
    try:
        res = results.round_results(session, rnd)
    except results.ResultsError as exc:
        fail(str(exc))
    for out in outputs:
        exports.export(res, out)
        click.echo(f"Đã ghi {out}")
    if answers_path:
        exports.write_answers_csv(res, answers_path)
        click.echo(f"Đã ghi {answers_path}")
    if responses_path:
        exports.write_responses_sav(res, responses_path)
        click.echo(f"Đã ghi {responses_path}")
    counts = res.provenance["counts"]
    scored = int(res.summary["survey_points"].notna().sum())
    click.echo(f"{round_code}: tính {counts['responses']} phiếu trả lời, {scored}/{len(res.summary)} cơ quan "
               f"có điểm, phương pháp {res.provenance['methodology_hash'][:12]}.")
    withheld = res.summary.loc[res.summary["withheld"], "agency"].tolist()
    if withheld:
        n_min = res.provenance["analysis_parameters"]["min_breakdown"]
        click.echo(f"Không công bố số liệu của {len(withheld)} cơ quan ({', '.join(withheld)}): mọi nhóm "
                   f"đối tượng trả lời về các cơ quan này đều có dưới {n_min} người trả lời "
                   "(để bảo đảm ẩn danh).")


def _citizens_run(session, rnd, outputs, per_response: bool) -> None:
    """``analysis run`` of a citizens' round: its shares, improvements and response rates (.xlsx, .csv)."""
    from survey_service.services import citizens

    if per_response:
        fail("Đợt khảo sát người dân không xuất từng phiếu trả lời (--answers, --responses).")
    rep = citizens.report(session, rnd, quarantined=citizens.quarantined(session, rnd))
    for out in outputs:
        try:
            citizens.export(rep, out)
        except citizens.CitizensError as exc:
            fail(str(exc))
        click.echo(f"Đã ghi {out}")
    overall = rep.shares[(rep.shares["level"] == "province") & (rep.shares["measure"] == "overall")]
    share = overall["est"].iloc[0] if len(overall) else None
    click.echo(f"{rnd.code}: hài lòng chung {'chưa có' if share is None or share != share else f'{share:.1%}'}; "
               f"không tính {rep.excluded['screened_out']} phiếu ngoài đối tượng, {rep.excluded['quarantined']} "
               f"phiếu của điều tra viên bị tạm loại.")


# --- receipt codes --------------------------------------------------------------------------------
@click.group("receipts")
def receipts_group():
    """Receipt codes of a citizens' round, printed on one-stop offices' result slips."""


@receipts_group.command("issue")
@click.option("--round", "round_code", required=True, help="A citizens' round, e.g. DNG-HL-2026.")
@click.option("--agency", required=True, help="The agency whose one-stop office returns the results.")
@click.option("--field", required=True, help="The field of the procedures (an option code of the round's field item).")
@click.option("--dossiers", "dossiers_file", type=click.File("r", encoding="utf-8"), required=True,
              help="The dossier numbers, one a line (never stored).")
@click.option("--out", type=click.File("w", encoding="utf-8"), required=True,
              help="CSV of dossier, code and link, for the slips.")
@with_appcontext
@needs_secrets("SECRET_KEY")
def receipts_issue(round_code, agency, field, dossiers_file, out):
    """The codes to print on these dossiers' result slips; only a keyed digest of each is stored."""
    import csv

    from survey_service.services import receipts

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    dossiers = [line.strip() for line in dossiers_file if line.strip()]
    try:
        slips = receipts.issue(session, rnd, secret=current_app.config["SECRET_KEY"], base_url=_public_base_url(),
                               agency=agency, field=field, dossiers=dossiers, actor="cli")
    except receipts.ReceiptError as exc:
        session.rollback()
        fail(str(exc))
    session.commit()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ho_so", "ma", "duong_dan"])
    writer.writerows((dossier, slip.code, slip.url) for dossier, slip in zip(dossiers, slips, strict=True))
    click.echo(f"Đã tạo {sum(s.new for s in slips)} mã mới ({len(slips) - sum(s.new for s in slips)} mã đã có) "
               f"cho {agency}, lĩnh vực {field}.")


# --- responses -----------------------------------------------------------------------------------
@click.group("responses")
def responses_group():
    """Responses collected elsewhere."""


@responses_group.command("import")
@click.option("--round", "round_code", required=True, help="Round code, e.g. QNA-2023.")
@click.argument("file", type=click.File("rb"))
@with_appcontext
@needs_secrets("SECRET_KEY")
def responses_import(round_code, file):
    """Import responses from a CSV file (one row per response, item columns named by item code), or an
    export of ODK Central (CSV zip) or KoboToolbox (XLSX or CSV, XML values and headers) of the forms written
    by `questionnaires xlsform`. Nothing is imported while any row is bad; every bad row is listed with its
    line; a submission imported before is skipped."""
    from survey_service.services import imports

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    try:
        report = imports.import_responses(session, rnd, file.read(), today=vietnam_today(),
                                          secret=current_app.config["SECRET_KEY"], actor="cli",
                                          keys=current_app.config.get("SHEET_SIGNING_KEYS") or [])
    except imports.ImportRejected as exc:
        session.rollback()
        shown = exc.errors[:imports.MAX_ERRORS_SHOWN]
        more = len(exc.errors) - len(shown)
        fail("\n".join([f"{file.name}: {e}" for e in shown]
                       + ([f"... và {more} lỗi khác"] if more else [])
                       + [f"{len(exc.errors)} lỗi; không nhập phiếu nào."]))
    session.commit()
    forms = ", ".join(f"{form}: {n}" for form, n in sorted(report.by_form.items()))
    click.echo(f"Đã nhập {report.responses} phiếu trả lời vào đợt {round_code} ({forms})"
               + (f"; {report.surplus} phiếu vượt chỉ tiêu (dư)" if report.surplus else "")
               + (f"; {report.already} bản ghi đã nhập trước, bỏ qua." if report.already else ".")
               + " " + report.note())


# --- report --------------------------------------------------------------------------------------
@click.command("report")
@click.option("--round", "round_code", required=True, help="Round code, e.g. DNG-2026.")
@click.option("--previous", "previous_code", help="An earlier round to compare with, e.g. QNA-2023.")
@click.option("--out", "outputs", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Output file, .docx or .pdf (the PDF is converted by LibreOffice). Repeatable.")
@click.option("--template", type=click.Path(exists=True, dir_okay=False),
              help="The province's Word template (docxtpl fields: docs/report.md); the bundled one by default.")
@with_appcontext
@needs_secrets("SECRET_KEY")
def report_command(round_code, previous_code, outputs, template):
    """Write the survey report of a round (Nghị định 30/2020/NĐ-CP layout): method, results with their
    intervals, targets, change since the previous round, annexes (sealed ballots of past days are released
    first, as by `analysis run`)."""
    from survey_service.services import comparison, report, results

    for out in outputs:
        if Path(out).suffix.lower() not in report.FORMATS:
            fail(f"Không hỗ trợ định dạng '{Path(out).suffix}' ({out}); dùng: {', '.join(report.FORMATS)}.")
    session = get_session()
    rnd = _round_or_fail(session, round_code)
    previous = _round_or_fail(session, previous_code) if previous_code else None
    for each in filter(None, (previous, rnd)):
        _release_due_ballots(session, each)
    try:
        written = report.write_report(session, rnd, list(outputs), previous=previous, template=template)
    except (report.ReportError, comparison.ComparisonError, results.ResultsError) as exc:
        fail(f"LỖI {exc}")
    for path in written:
        click.echo(f"Đã ghi {path}")


# --- demo ----------------------------------------------------------------------------------------
@click.group("demo")
def demo_group():
    """The demo round and accounts."""


@demo_group.command("setup")
@click.option("--round", "round_code", default="QNA-2023", show_default=True,
              help="The bundled round the demo collects for: QNA-2023 (Quảng Nam, 2023) or DNG-2026 (Đà Nẵng, "
                   "two-tier local government).")
@click.option("--simulated/--no-simulated", default=True, show_default=True,
              help="Also create the demonstration rounds <ROUND>-DEMO and an earlier <ROUND>-DEMO-TRUOC filled with "
                   "simulated responses.")
@with_appcontext
def demo_setup(round_code, simulated):
    """Migrate the database, load a bundled round and open it for collection, (re)set the demo accounts;
    prints their passwords."""
    from survey_service.services import simulation

    questionnaire_dir = current_app.config["QUESTIONNAIRE_DIR"]
    try:
        round_dir = demo.bundled_round_dir(questionnaire_dir, round_code)
    except demo.DemoError as exc:
        raise click.UsageError(str(exc)) from None
    config_path = Path(current_app.instance_path) / "config.py"
    written = demo.write_instance_secrets(config_path)
    if written:
        # from now on, as the server will: drafts sealed and sheets signed below must open after a restart
        current_app.config.update(SECRET_KEY=written[0], SHEET_SIGNING_KEYS=written[1])
        click.echo(f"Đã ghi khóa bí mật mới vào {config_path}.")
    migrate.upgrade(current_app.config["DATABASE_URL"])
    session, today = get_session(), vietnam_today()
    setup = demo.set_up(session, round_dir, questionnaire_dir, secret=current_app.config["SECRET_KEY"], today=today)
    rnd = setup.round
    click.echo(f"Đợt {rnd.code}: {'đã nạp' if setup.loaded else 'đã có từ trước'}.")
    click.echo(f"Thời gian nhận phiếu: {rnd.opens_on:%d/%m/%Y} đến {rnd.closes_on:%d/%m/%Y} "
               "(round.yaml giữ ngày của chính đợt khảo sát).")
    for other in setup.restored:
        click.echo(f"Đợt {other.code}: trở lại thời gian của chính đợt ({other.opens_on:%d/%m/%Y} đến "
                   f"{other.closes_on:%d/%m/%Y}); bản trình diễn nhận phiếu cho đợt {rnd.code}.")
    click.echo("Tài khoản cán bộ của bản trình diễn (mật khẩu mới mỗi lần khởi động):")
    for user, password in setup.accounts:
        click.echo(f"  {user.username:<10} {user.role.value:<11} {password}")
    session.commit()
    if not simulated:
        return
    # the earlier demonstration round has every agency a known step worse, so the report shows a change
    accounts = {user.username: user for user, _ in setup.accounts}
    citizens_round = rounds.check_round(round_dir, questionnaire_dir).round_kind == "citizens"
    for code, shift, answers_seed in (
            (rounds.previous_demo_code(rnd.code), simulation.PREVIOUS_SHIFT, 2022),
            (rounds.demo_code(rnd.code), 0.0, None)):
        if citizens_round and shift:  # a citizens' round's demonstration has no previous round to compare
            continue
        try:
            _, report = simulation.demo_round(
                session, round_dir, questionnaire_dir, code, accounts=accounts, today=today,
                signing_keys=current_app.config["SHEET_SIGNING_KEYS"], secret=current_app.config["SECRET_KEY"],
                quality_shift=shift, answers_seed=answers_seed)
        except simulation.SimulationError as exc:
            session.commit()
            click.echo(f"Đợt {code} (dữ liệu mô phỏng): {exc}")
            continue
        session.commit()
        if citizens_round:
            click.echo(f"Đợt {code} (dữ liệu mô phỏng, ghi rõ trên mọi trang): {report.sheets_keyed}/"
                       f"{report.sheets_issued} phiếu giấy của {len(simulation.INVESTIGATORS)} điều tra viên đã "
                       f"nhập (mẫu chọn từ {report.frames} khung mẫu, quansat đã ký duyệt), "
                       f"{report.online_respondents} người trả lời trực tuyến bằng mã trên phiếu hẹn; phúc tra "
                       f"{report.rechecked} phiếu, tạm loại điều tra viên "
                       f"{', '.join(report.quarantined) or 'không ai'}.")
            continue
        click.echo(f"Đợt {code} (dữ liệu mô phỏng, ghi rõ trên mọi trang): {report.online_respondents} người trả "
                   f"lời trực tuyến ({report.online_responses} phiếu trả lời), {report.drafts} phiếu đang lưu dở, "
                   f"đã nhập {report.sheets_keyed}/{report.sheets_issued} phiếu giấy, {report.second_keyed} phiếu "
                   f"nhập hai lần, {report.disagreements} chỗ khác nhau ({report.reconciled} đã đối chiếu).")


# --- frames and sample lists ---------------------------------------------------------------------
@click.group("frames")
def frames_group():
    """Sampling frames: import, draw the official and reserve lists, export them, replace from the reserve."""


def _frame_or_fail(session, frame_id: int):
    from survey_service.services import frames

    try:
        return frames.get_frame(session, frame_id)
    except frames.FrameError as exc:
        fail(str(exc))


def _service_call(session, call):
    """Run a service call; on a service error roll back and stop with its message."""
    from survey_service.services.errors import ServiceError

    try:
        return call()
    except ServiceError as exc:
        session.rollback()
        fail(str(exc))


@frames_group.command("import")
@click.option("--round", "round_code", required=True)
@click.option("--kind", type=click.Choice(["dossiers", "households"]), required=True,
              help="dossiers: a one-stop office's register (agency, field, ref); households: a household list "
                   "(commune, village, ref).")
@click.option("--name", help="The frame's name (default: the file's name).")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def frames_import(round_code, kind, name, path):
    """Import a frame from CSV or XLSX; every bad row is reported and nothing is stored."""
    from survey_service.services import frames, rounds

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    frame = _service_call(session, lambda: frames.import_frame(
        session, rnd, kind, path.read_bytes(), path.name, name=name, today=rounds.local_today(), actor="cli"))
    session.commit()
    units = len(frames.plan(session, frame, frames.Design()))
    click.echo(f"Đã nhập khung mẫu số {frame.id} “{frame.name}”: {units} ô.")


@frames_group.command("sample")
@click.argument("frame_id", type=int)
@click.option("--margin", type=float, default=0.05, show_default=True, help="e of n = N / (1 + N e²).")
@click.option("--target", type=float, help="Target share (e.g. 0.9) the cells must be sized for.")
@click.option("--target-margin", type=float, help="Half-width wanted around the target (e.g. 0.05).")
@click.option("--reserve", type=float, default=0.2, show_default=True, help="Reserve list size / official size.")
@click.option("--communes", type=int, help="Households: communes drawn by PPS (default: every commune).")
@click.option("--seed", type=int, help="Seed of the draw (default: a new random one, recorded).")
@with_appcontext
def frames_sample(frame_id, margin, target, target_margin, reserve, communes, seed):
    """Draw the official and reserve lists of a frame (again, until they are signed off)."""
    from survey_service.services import frames, rounds

    session = get_session()
    frame = _frame_or_fail(session, frame_id)
    design = frames.Design(margin, target, target_margin, reserve, communes)
    cells = _service_call(session, lambda: frames.draw(session, frame, design, today=rounds.local_today(),
                                                       seed=seed, actor="cli"))
    session.commit()
    click.echo(f"{'Ô':<40}{'N':>8}{'n':>8}{'Dự phòng':>10}")
    for cell in cells:
        name = f"{cell.agency} {cell.field}".strip()
        click.echo(f"{name:<40}{cell.population:>8}{cell.sample:>8}{cell.reserve:>10}")
    click.echo(f"Tổng: {sum(c.sample for c in cells)} chính thức, {sum(c.reserve for c in cells)} dự phòng; "
               f"hạt giống {frame.seed}.")


@frames_group.command("lists")
@click.argument("frame_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              help="A .csv or .xlsx file.")
@with_appcontext
def frames_lists(frame_id, out):
    """Write the official and reserve lists for printing."""
    from survey_service.services import frames

    session = get_session()
    frame = _frame_or_fail(session, frame_id)
    out.write_bytes(_service_call(session, lambda: frames.export_lists(session, frame, out.suffix.lstrip(".").lower())))
    click.echo(f"Đã ghi danh sách mẫu vào {out}.")


@frames_group.command("replace")
@click.argument("frame_id", type=int)
@click.argument("ref")
@click.option("--reason", required=True)
@with_appcontext
def frames_replace(frame_id, ref, reason):
    """Replace a unit that cannot be surveyed by the next one of its cell's reserve list (after sign-off)."""
    from survey_service.services import frames

    session = get_session()
    frame = _frame_or_fail(session, frame_id)
    spare = _service_call(session, lambda: frames.replace(session, frames.find_unit(session, frame, ref),
                                                          reason=reason, actor="cli"))
    session.commit()
    click.echo(f"Đã thay {ref} bằng {spare.ref} (số {spare.list_position} của danh sách dự phòng).")


@frames_group.command("targets")
@click.argument("frame_id", type=int)
@click.option("--form", "form_code", required=True, help="The paper form whose quota targets are set.")
@with_appcontext
def frames_targets(frame_id, form_code):
    """Set each agency's paper quota target of a form to its official sample."""
    from survey_service.services import frames, rounds

    session = get_session()
    frame = _frame_or_fail(session, frame_id)
    changed = _service_call(session, lambda: frames.set_paper_targets(
        session, frame, rounds.form_code_for(frame.round, form_code), actor="cli"))
    session.commit()
    click.echo(f"Đã đặt chỉ tiêu cho {changed} ô.")


@frames_group.command("sign-off")
@click.argument("frame_id", type=int)
@click.option("--observer", required=True, help="The observer's own account (role observer).")
@click.option("--organisation", required=True, help="MTTQ (Fatherland Front) or CCB (Veterans' Association).")
@click.option("--password-stdin", is_flag=True, help="Read the observer's password from standard input.")
@with_appcontext
def frames_sign_off(frame_id, observer, organisation, password_stdin):
    """The observer signs off a frame's official and reserve lists, with their own password (audited)."""
    from survey_service.models import Role
    from survey_service.services import frames, rounds, users

    session = get_session()
    frame = _frame_or_fail(session, frame_id)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt(
        f"Mật khẩu của {observer}", hide_input=True)
    user = _service_call(session, lambda: users.confirm(session, observer, password, Role.OBSERVER))
    _service_call(session, lambda: frames.sign_off(session, frame, organisation=organisation, by=user,
                                                   today=rounds.local_today(), actor="cli"))
    session.commit()
    click.echo(f"{user.username} ({organisation}) đã ký duyệt danh sách mẫu của khung {frame.id} “{frame.name}”; "
               f"mã kiểm tra {frame.signed_lists_hash[:16]}.")


@frames_group.command("delete")
@click.argument("frame_id", type=int)
@click.option("--sample-only", is_flag=True, help="Delete the drawn lists only; the frame stays.")
@with_appcontext
def frames_delete(frame_id, sample_only):
    """Delete a frame (or only its sample) before sign-off and before any sheet of the round is issued."""
    from survey_service.services import frames

    session = get_session()
    frame = _frame_or_fail(session, frame_id)
    name = frame.name
    if sample_only:
        _service_call(session, lambda: frames.delete_sample(session, frame, actor="cli"))
    else:
        _service_call(session, lambda: frames.delete_frame(session, frame, actor="cli"))
    session.commit()
    click.echo(f"Đã xóa {'mẫu đã chọn của ' if sample_only else ''}khung mẫu {frame_id} “{name}”.")


@frames_group.command("status")
@click.option("--round", "round_code", required=True)
@with_appcontext
def frames_status(round_code):
    """The round's frames: kind, units, whether drawn and signed off."""
    from survey_service.services import frames

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    found = frames.round_frames(session, rnd.id)
    if not found:
        click.echo(f"Đợt {rnd.code} không có khung mẫu: phiếu được phát theo chỉ tiêu.")
    for frame in found:
        signed = (f"ký duyệt {frame.signed_off_on:%d/%m/%Y} ({frame.signed_off_as})" if frame.signed_off_on
                  else "chưa ký duyệt")
        drawn = f"chọn mẫu {frame.sampled_on:%d/%m/%Y}, hạt giống {frame.seed}" if frame.sampled_on else "chưa chọn mẫu"
        click.echo(f"{frame.id}  {frame.name}  [{frames.KIND_LABELS[frame.kind]}]  {drawn}; {signed}")


# --- phúc tra ------------------------------------------------------------------------------------
@click.group("phuctra")
def phuctra_group():
    """Phúc tra: the contact vault, the draw, outcomes, quarantined investigators, closing."""


@phuctra_group.command("contacts")
@click.option("--round", "round_code", required=True)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
@needs_secrets("SECRET_KEY")
def phuctra_contacts(round_code, path):
    """Seal a list of contacts (serial, kind, name, phone) into the vault; all rows or none."""
    from survey_service.services import phuctra

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    count = _service_call(session, lambda: phuctra.store_contacts(
        session, rnd, phuctra.parse_contacts(path.read_bytes(), path.name), secret=current_app.config["SECRET_KEY"],
        actor="cli"))
    session.commit()
    click.echo(f"Đã niêm phong {count} liên hệ vào danh bạ phúc tra của đợt {rnd.code}.")


@phuctra_group.command("draw")
@click.option("--round", "round_code", required=True)
@click.option("--seed", type=int, help="Seed of the random draw (default: a new random one, recorded).")
@with_appcontext
@needs_secrets("SECRET_KEY")
def phuctra_draw(round_code, seed):
    """Open phúc tra: draw the round's share of each investigator's returned sheets and the flagged ones."""
    from survey_service.services import phuctra, rounds

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    report = _service_call(session, lambda: phuctra.draw(
        session, rnd, today=rounds.local_today(), secret=current_app.config["SECRET_KEY"], seed=seed, actor="cli"))
    session.commit()
    click.echo(f"Đã chọn {report.drawn} trong {report.returned} phiếu thu về: {report.random} ngẫu nhiên, "
               f"{report.identical} trả lời giống hệt, {report.busy_day} thu quá nhiều trong một ngày.")


@phuctra_group.command("outcome")
@click.option("--round", "round_code", required=True)
@click.argument("serial")
@click.option("--reached/--not-reached", required=True)
@click.option("--received/--not-received", default=None)
@click.option("--self-filled/--not-self-filled", default=None)
@click.option("--prompted/--not-prompted", default=None)
@click.option("--paid/--not-paid", default=None)
@with_appcontext
def phuctra_outcome(round_code, serial, reached, received, self_filled, prompted, paid):
    """Record what re-contacting a drawn sheet's respondent found (process questions only)."""
    from survey_service.services import phuctra, rounds

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    outcome = _service_call(session, lambda: phuctra.record_outcome(
        session, phuctra.get_item(session, rnd, serial), reached=reached, received=received,
        self_filled=self_filled, prompted=prompted, paid=paid, today=rounds.local_today(), actor="cli"))
    session.commit()
    click.echo(f"Phiếu {serial}: {phuctra.OUTCOME_LABELS[outcome]}.")


@phuctra_group.command("status")
@click.option("--round", "round_code", required=True)
@with_appcontext
def phuctra_status(round_code):
    """Per investigator: sheets returned, drawn, outcomes, failure rate, quarantine."""
    from survey_service.services import phuctra

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    click.echo(f"{'Điều tra viên':<20}{'Thu về':>8}{'Chọn':>6}{'Đạt':>6}{'KLL':>6}{'Không đạt':>11}  Tạm loại")
    for row in phuctra.summary(session, rnd):
        name = row.investigator or "(dòng lệnh)"
        click.echo(f"{name:<20}{row.returned:>8}{row.drawn:>6}{row.confirmed:>6}{row.not_reached:>6}"
                   f"{row.failed:>11}  {'có' if row.quarantined else ''}")


@phuctra_group.command("close")
@click.option("--round", "round_code", required=True)
@with_appcontext
def phuctra_close(round_code):
    """Close phúc tra, delete the round's contact vault and rewrite its tables' files."""
    from survey_service.services import phuctra, rounds

    session = get_session()
    rnd = _round_or_fail(session, round_code)
    deleted = _service_call(session, lambda: phuctra.close(session, rnd, today=rounds.local_today(), actor="cli"))
    session.commit()
    click.echo(f"Đã đóng phúc tra đợt {rnd.code} và xóa {deleted} liên hệ khỏi danh bạ.")


# --- backup and restore --------------------------------------------------------------------------
@click.command("backup")
@click.argument("out", type=click.Path(dir_okay=False))
@with_appcontext
def backup_command(out):
    """Write a consistent copy of the whole database to OUT while the service runs (SQLite: a database
    file; PostgreSQL: a pg_dump archive)."""

    try:
        report = backup.backup(current_app.config["DATABASE_URL"], out)
    except backup.BackupError as exc:
        fail(f"ERROR {exc}")
    click.echo(f"Backup written to {report.path} ({report.kind}, {report.size:,} bytes).")


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.confirmation_option(prompt="Replace every table of the database with the backup?")
@with_appcontext
def restore_command(source):
    """Replace the database's contents with the backup SOURCE, all or nothing. Stop the service first."""

    try:
        backup.restore(current_app.config["DATABASE_URL"], source)
    except backup.BackupError as exc:
        fail(f"ERROR {exc}\nThe database was not changed.")
    click.echo(f"Database restored from {source}.")


COMMANDS = [backup_command, restore_command, report_command]
GROUPS = [db_group, questionnaires_group, round_group, users_group, codes_group, sheets_group, analysis_group,
          responses_group, receipts_group, demo_group, frames_group, phuctra_group]


def register_commands(app: Flask) -> None:
    for command in GROUPS + COMMANDS:
        app.cli.add_command(command)


def _create_app():
    from survey_service import create_app

    return create_app(require_secrets=False)


#: Without Flask's ``run``: the development server would serve the app without its secrets; serve it with
#: gunicorn (README), which builds it with them.
main = FlaskGroup(create_app=_create_app, add_default_commands=False,
                  help="Survey service for the provincial PAR INDEX survey.")
main.add_command(shell_command)
main.add_command(routes_command)
