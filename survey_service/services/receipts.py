"""Receipt codes: a citizens' round's code printed on a one-stop office's result slip (phiếu hẹn / biên nhận
kết quả), which opens the round's online form once, about the agency that handled the dossier.

The code is derived from the dossier with the server's secret (HMAC of round, agency and dossier number),
so printing a slip again gives the same code and the office needs to keep nothing. The service stores only
a keyed digest of the code with the agency's online quota cell and the field of the procedure: never the
code, never the dossier number, no date. A code is spent like an invitation code, by a
:class:`~survey_service.models.SpentCode` under its mark (another keyed name), and the answers go through
the ballot box; nothing stored links a receipt row to a spending, a ballot or a response.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import Agency, Channel, QuotaCell, ReceiptCode, Round, StaffUser
from survey_service.services import audit, rounds
from survey_service.services.errors import ServiceError
from survey_service.services.invitations import ALPHABET, CODE_LENGTH, code_url, format_code
from survey_service.services.sealing import keyed_hash

#: Longest dossier number accepted (national dossier codes are about 20 characters).
MAX_DOSSIER = 64


class ReceiptError(ServiceError):
    """A receipt code that cannot be issued; the message is for the user (Vietnamese)."""


@dataclass(frozen=True)
class Receipt:
    """A code to print on one slip, with the link it opens; ``new`` is False for a slip printed again."""

    code: str
    url: str
    agency: str
    field: str
    new: bool


def receipt_code(secret: str, round_code: str, agency: str, dossier: str) -> str:
    """The slip's code: 12 letters of the invitation alphabet from an HMAC of round, agency and dossier."""
    number = int.from_bytes(keyed_hash(secret, "receipt-code", round_code, f"{agency}\x1f{dossier}"), "big")
    letters = []
    for _ in range(CODE_LENGTH):
        number, index = divmod(number, len(ALPHABET))
        letters.append(ALPHABET[index])
    return format_code("".join(letters))


def digest(secret: str, code: str) -> str:
    """What is stored of a receipt code: a keyed digest (HMAC-SHA256, 128 bits), not its mark."""
    return keyed_hash(secret, "receipt-digest", "", code).hex()[:32]


def fields(session: Session, rnd: Round) -> dict[str, str]:
    """The fields a receipt may name: option code → label of the round's field item (citizens.yaml)."""
    form = next(f for f in rnd.forms if _online(session, rnd, f.form_code))
    questionnaire = rounds.questionnaire_for(session, rnd, form.form_code)
    scale = questionnaire.scales[questionnaire.item(rnd.methodology["field"]).scale]
    return {o.code: o.label for o in scale.options}


def _online(session: Session, rnd: Round, form_code: str) -> bool:
    return session.scalar(sa.select(sa.func.count()).select_from(QuotaCell).where(
        QuotaCell.round_id == rnd.id, QuotaCell.form_code == form_code, QuotaCell.channel == Channel.ONLINE)) > 0


def issue(session: Session, rnd: Round, *, secret: str, base_url: str, agency: str, field: str,
          dossiers: list[str], by: StaffUser | None = None, actor: str = "staff") -> list[Receipt]:
    """The codes for these dossiers of one agency and field, one per dossier in order, stored as digests (a
    dossier printed before keeps its code and row). All or none.

    :raises ReceiptError: not a citizens' round, closed, unknown agency or field, or a bad dossier number.
    """
    if not rounds.is_citizens(rnd):
        raise ReceiptError(f"Đợt {rnd.code} không phải đợt khảo sát người dân; mã trên phiếu hẹn chỉ dùng cho "
                           "đợt khảo sát người dân.", 400)
    try:
        rounds.check_collecting(rnd, rounds.local_today())
    except rounds.RoundError as exc:
        raise ReceiptError(str(exc), 409) from None
    cell = session.scalar(sa.select(QuotaCell).join(Agency, Agency.id == QuotaCell.agency_id).where(
        QuotaCell.round_id == rnd.id, QuotaCell.channel == Channel.ONLINE, Agency.code == agency))
    if cell is None:
        raise ReceiptError(f"Đợt {rnd.code} không có ô chỉ tiêu trực tuyến cho cơ quan mã {agency!r}.", 400)
    known = fields(session, rnd)
    if field not in known:
        raise ReceiptError(f"Lĩnh vực {field!r} không có trong danh mục: "
                           + ", ".join(f"{c} = {label}" for c, label in known.items()) + ".", 400)
    if not dossiers:
        raise ReceiptError("Chưa có số hồ sơ nào.", 400)
    codes = []
    for dossier in dossiers:
        dossier = (dossier or "").strip()
        if not dossier or len(dossier) > MAX_DOSSIER or not dossier.isprintable():
            raise ReceiptError(f"Số hồ sơ {dossier[:MAX_DOSSIER]!r} không hợp lệ (1 đến {MAX_DOSSIER} ký tự in được).",
                               400)
        codes.append(receipt_code(secret, rnd.code, agency, dossier))
    digests = {digest(secret, code): code for code in codes}
    stored = set(session.scalars(sa.select(ReceiptCode.digest).where(ReceiptCode.digest.in_(digests))))
    session.add_all(ReceiptCode(digest=d, quota_cell_id=cell.id, field=field) for d in digests if d not in stored)
    receipts = [Receipt(code, code_url(base_url, code), agency, field, digest(secret, code) not in stored)
                for code in codes]
    audit.record(session, "receipts.issue", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"agency": agency, "field": field, "count": sum(r.new for r in receipts)})
    session.flush()
    return receipts
