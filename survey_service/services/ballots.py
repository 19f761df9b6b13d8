"""The sealed ballot box: online submissions wait sealed, then go into the response tables in shuffled
batches of at least the round's minimum group size per quota cell.

Why sealed: every write reaches the database's write-ahead log in commit order, and PostgreSQL keeps old
row versions in its table files until they are vacuumed. Had a submission written its responses in clear,
the log's order of those writes would be the submission order, to be joined with the access log's times. So
a submission writes one :class:`~survey_service.models.Ballot`: its quota cell in clear (the quota and the
dashboard count it at once), and everything else sealed, padded to a size fixed by the form. Sealed to the
server's secret and the round code (AES-256-GCM), or, for a round with an owner's key, to that public key
(:class:`~survey_service.services.sealing.OwnerBox`), which the server cannot open until the owner gives the
private half at release.

Why batches of k: a response keeps its cell, and anyone who knows when each respondent of a cell submitted
(from a proxy's log, from daily backups, from watching the dashboard) could pick out the response of the one
respondent who was alone in a release. So a cell's ballots are released only while at least ``2k`` wait
(``k``: the round's ``min_breakdown``), and then all but ``k`` of them, chosen at random; at the close,
every one left (at least ``k`` whenever the cell had that many). Every batch thus holds at least ``k`` of a
cell's respondents, a released response could be any of the at least ``2k`` who were waiting, and its day
is the day of its release, never of its submission. The cost: up to ``2k - 1`` respondents per cell wait
for the results until more come or the round closes.

Not only online answers: a citizens' keyed paper sheet and every imported respondent
(:mod:`survey_service.services.imports`) are ballots too.

When: in the transaction of the submission that brings its cell to ``2k`` waiting ballots
(:func:`release_cell`, server-sealed rounds), by ``round release``, by an import, and at the close; a round over by date
keeps what waits until ``round release`` or its close. Pages never release: they only count what waits.
Every release locks a cell's row before it reads the cell's ballots, so releases of one cell (two
submissions, or a submission and the command) follow one another and each ballot is released once. An
owner-sealed round releases only when the owner gives the key (``round release --key``).
"""
from __future__ import annotations

import functools
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service import questionnaires as qn
from survey_service.models import (
    POOLED_INVESTIGATORS, Answer, Ballot, Channel, QuotaCell, Response, Round, random_key,
)
from survey_service.services.sealing import OwnerBox, OwnerKey, Sealer, shared_sealer

_ballot_t, _response_t, _answer_t, _cell_t, _round_t = (
    Ballot.__table__, Response.__table__, Answer.__table__, QuotaCell.__table__, Round.__table__)
_INSERT_BALLOT = sa.insert(_ballot_t)
#: What a citizens' round's keyed sheet names in clear on its ballot: its investigator and its household's commune.
NAMED = ("investigator", "commune")
#: A stand-in for the widest number a ballot may hold (keys of 63 bits).
_WIDEST_NUMBER = 2 ** 63
#: The longest JSON spelling of one character: a control character is written ``\\u0001``.
_WIDEST_CHARACTER = "\x01"


def sealer(secret: str, round_code: str) -> Sealer:
    """The round's ballot key: its own HKDF label, so neither a draft's nor the cookie's key opens it."""
    return shared_sealer(secret, "ballot", round_code)


@functools.lru_cache(maxsize=32)
def box(secret: str, round_code: str, public_key: str | None) -> Sealer | OwnerBox:
    """What a round's ballots are sealed with: its owner's public key if it has one, else the server's."""
    return OwnerBox(public_key, round_code) if public_key else sealer(secret, round_code)


def opener(rnd: Round, secret: str, owner_key: OwnerKey | None = None) -> Sealer | OwnerKey | None:
    """What opens a round's ballots: the owner's key for an owner-sealed round (None when not given),
    else the server's."""
    return owner_key if rnd.ballot_public_key else sealer(secret, rnd.code)


def sealed_size(questionnaire: qn.Questionnaire, rated: int) -> int:
    """At least how large every ballot of this form rating ``rated`` agencies is padded to: the largest
    content the form accepts (every text at its length limit, each character at its longest spelling).

    A text item without a length limit can go beyond it, and then its ballot's size (a power of two) tells
    roughly how long the text is; every bundled form has limits.
    """
    widest = {}
    for item in questionnaire.items:
        if item.kind == "scale":
            widest[item.code] = max(questionnaire.scales[item.scale].codes, key=len)
        else:
            widest[item.code] = _WIDEST_CHARACTER * (item.max_length or 0)
    widest_content = _content(_WIDEST_NUMBER, questionnaire.code, _WIDEST_NUMBER, [(_WIDEST_NUMBER, widest)] * rated,
                              max((c.value for c in Channel), key=len), surplus=False, sheet=False)
    return len(json.dumps(widest_content, ensure_ascii=False, separators=(",", ":")).encode())


def _content(version_id: int, form_code: str, division_id: int | None,
             answers: list[tuple[int | None, dict[str, str]]], channel: str, surplus: bool = False,
             sheet: bool = False) -> dict:
    return {"version": version_id, "form": form_code, "division": division_id,
            "answers": [[agency_id, values] for agency_id, values in answers], "channel": channel,
            "surplus": surplus, "sheet": sheet}


def cast(session: Session, box: Sealer | OwnerBox, *, cell_id: int, questionnaire: qn.Questionnaire,
         version_id: int, division_id: int | None, answers: list[tuple[int | None, dict[str, str]]],
         channel: Channel = Channel.ONLINE, investigator: str | None = None, commune: str | None = None,
         surplus: bool = False) -> None:
    """Put one respondent's questionnaire in the box: ``answers`` is (agency rated, its answers) per agency.
    Nothing of when: the ballot carries no day or time. A citizens' round's keyed paper sheet comes in
    with ``channel`` paper, its ``investigator`` and its household's ``commune``, and never its sheet. An
    imported paper questionnaire above its cell's target is ``surplus``; one of a matrix form (HĐ-CT) is one
    response for the whole sheet, its answers still by agency (None: the sheet's own texts)."""
    content = _content(version_id, questionnaire.code, division_id, answers, channel.value, surplus,
                       questionnaire.rates == "matrix")
    session.execute(_INSERT_BALLOT, {
        "id": random_key(), "quota_cell_id": cell_id, "investigator": investigator, "commune": commune,
        "sealed": box.seal(content, min_size=sealed_size(questionnaire, len(answers))),
    })


def waiting(round_id: int, *columns) -> sa.Select:
    """``columns`` of the round's ballots not yet released (with their quota cell joined), for counts
    grouped as the caller needs."""
    return (sa.select(*columns).select_from(_ballot_t)
            .join(_cell_t, _cell_t.c.id == _ballot_t.c.quota_cell_id).where(_cell_t.c.round_id == round_id))


def waiting_by_cell(session: Session, round_id: int) -> dict[int, int]:
    """cell id → ballots not yet released (each one respondent)."""
    return dict(session.execute(waiting(round_id, _ballot_t.c.quota_cell_id, sa.func.count())
                                .group_by(_ballot_t.c.quota_cell_id)).all())


def waiting_in_cell(cell_id) -> sa.ScalarSelect:
    """The number of a cell's ballots, as a subquery to add to a count of its respondents."""
    return (sa.select(sa.func.count()).select_from(_ballot_t)
            .where(_ballot_t.c.quota_cell_id == cell_id).correlate_except(_ballot_t).scalar_subquery())


def waiting_count(session: Session, round_id: int) -> int:
    """How many of the round's ballots wait (each one respondent), for the pages that show responses."""
    return session.scalar(waiting(round_id, sa.func.count()))


def waiting_note(count: int, *, owner_sealed: bool = False, over: bool = False) -> str:
    """What a page or command says of the ballots still sealed while results are shown; ``over``: the round
    is past its last day but not closed, so nothing more comes in to release them."""
    if not count:
        return ""
    if owner_sealed:
        return (f"{count} phiếu trực tuyến đang được niêm phong bằng khóa của chủ đợt; chúng chỉ được đưa vào kết "
                "quả khi chủ đợt mở bằng khóa riêng (survey-service round release --key).")
    if over:
        return (f"{count} phiếu trực tuyến đang chờ: đợt khảo sát đã hết hạn nhận phiếu, các phiếu này vào kết quả "
                "khi đợt được đóng (trang Đợt khảo sát) hoặc bằng lệnh survey-service round release.")
    return (f"{count} phiếu trực tuyến đang chờ: phiếu của mỗi ô chỉ được đưa vào kết quả theo từng đợt ít nhất "
            "bằng cỡ nhóm tối thiểu, để không ai biết phiếu nào của ai; phần còn lại vào kết quả khi có thêm "
            "phiếu hoặc khi đợt khảo sát đóng.")


@dataclass(frozen=True)
class Release:
    """What one release did: respondents (ballots) released, their responses, and ballots left waiting."""

    ballots: int = 0
    responses: int = 0
    #: Ballots due that could not be opened (sealed under another ``SECRET_KEY``); they stay in the box.
    unreadable: int = 0
    #: Ballots left waiting for more of their cell (or, owner-sealed, for the owner's key).
    waiting: int = 0


def min_group(settings: dict | None) -> int:
    """``k``: the round's minimum group size (``min_breakdown``)."""
    return int((settings or {}).get("min_breakdown", qn.OPTIONAL_SETTINGS["min_breakdown"]))


def _lock_cells(session: Session, *where) -> list[int]:
    """Lock the quota cells' rows (in id order) before their ballots are read: a second release of the same
    cell waits here until the first commits, then reads what is left. ``NO KEY UPDATE``: submissions'
    inserts, which only share-lock the key, go on meanwhile. (SQLite has one writer at a time.)"""
    return list(session.scalars(sa.select(_cell_t.c.id).where(*where).order_by(_cell_t.c.id)
                                .with_for_update(key_share=True)))


def release(session: Session, rnd: Round, opener: Sealer | OwnerKey | None, *, today: date,
            everything: bool = False) -> Release:
    """Release the round's due ballots into responses: of every cell where at least ``2k`` wait, all but ``k``
    chosen at random; with ``everything``, or once the round is over, every ballot.

    ``opener`` opens the round's ballots (:func:`opener`); None (an owner-sealed round without its key)
    releases nothing. One transaction (the caller commits): the round's cells are locked, the due ballots
    read and opened, deleted, and their responses and answers inserted, every cell's in one batch in random
    order with fresh random keys and respondent keys, dated ``today``. Only the ballots this transaction's
    DELETE (by id) removed are inserted, so two releases running at once store each ballot once. A ballot
    that cannot be opened is left in the box and counted, never dropped.
    """
    if opener is None:
        return Release(waiting=session.scalar(waiting(rnd.id, sa.func.count())))
    everything = everything or rnd.closed_at is not None or today > rnd.closes_on
    cells = _lock_cells(session, _cell_t.c.round_id == rnd.id)
    done = _release(session, rnd.id, cells, opener, k=min_group(rnd.settings), today=today, everything=everything)
    left = session.scalar(waiting(rnd.id, sa.func.count()))
    return Release(done.ballots, done.responses, done.unreadable, left - done.unreadable)


def release_cell(session: Session, round_id: int, cell_id: int, opener: Sealer, *, today: date) -> Release:
    """A submission's own step: once its ballot is cast, release the cell's ballots if ``2k`` wait (all but
    ``k``, chosen at random), in the submission's transaction. Server-sealed rounds only (``opener``)."""
    k = min_group(session.scalar(sa.select(_round_t.c.settings).where(_round_t.c.id == round_id)))
    cells = _lock_cells(session, _cell_t.c.id == cell_id)
    return _release(session, round_id, cells, opener, k=k, today=today, everything=False)


def _release(session: Session, round_id: int, cells: list[int], opener: Sealer | OwnerKey, *, k: int, today: date,
             everything: bool) -> Release:
    """Release the due ballots of ``cells`` (already locked); ``waiting`` is not counted here."""
    by_cell: dict[int, list] = {}
    for start in range(0, len(cells), 500):  # (a bound list of at most 500 keys per statement)
        for row in session.execute(sa.select(_ballot_t.c.id, _ballot_t.c.quota_cell_id, _ballot_t.c.sealed,
                                             *[_ballot_t.c[c] for c in NAMED]).where(
                _ballot_t.c.quota_cell_id.in_(cells[start:start + 500]))):
            by_cell.setdefault(row.quota_cell_id, []).append(row)
    # (only paper ballots of a citizens' round name an investigator or a commune: an online one counts nothing more)
    named = {column: (_named(session, round_id, k, column)
                      if any(row._mapping[column] for rows in by_cell.values() for row in rows) else set())
             for column in NAMED}
    if everything:
        for column in NAMED:
            _fill_pools(session, round_id, k, column, by_cell, named[column])
    chance = random.SystemRandom()
    opened, unreadable = {}, 0
    for rows in by_cell.values():
        if not everything:
            rows = [row for row in rows if all(row._mapping[c] is None or (row.quota_cell_id, row._mapping[c])
                                               in named[c] for c in NAMED)]
            if len(rows) < 2 * k:
                continue
            rows = chance.sample(rows, len(rows) - k)
        for row in rows:
            content = opener.open(row.sealed)
            if isinstance(content, dict):
                opened[row.id] = (row, content)
            else:
                unreadable += 1
    claimed = set()
    ids = list(opened)
    for start in range(0, len(ids), 500):
        claimed.update(session.scalars(sa.delete(_ballot_t).where(
            _ballot_t.c.id.in_(ids[start:start + 500])).returning(_ballot_t.c.id)))
    responses, answers = _unsealed(round_id, (opened[i] for i in claimed), today, named)
    chance.shuffle(responses)
    chance.shuffle(answers)
    if responses:
        session.execute(sa.insert(_response_t), responses)
    if answers:
        session.execute(sa.insert(_answer_t), answers)
    return Release(len(claimed), len(responses), unreadable)


def _released(round_id: int, column: str) -> sa.Select:
    """Respondents of the round's released responses per (cell, ``column``) among those naming one."""
    return (sa.select(_response_t.c.quota_cell_id, _response_t.c[column],
                      sa.func.count(sa.distinct(_response_t.c.respondent_key)))
            .where(_response_t.c.round_id == round_id, _response_t.c[column].is_not(None))
            .group_by(_response_t.c.quota_cell_id, _response_t.c[column]))


def _named(session: Session, round_id: int, k: int, column: str) -> set[tuple[int, str]]:
    """(cell, investigator or commune) of at least ``k`` keyed sheets in the cell (waiting as ballots or
    released as responses): only their responses may carry the name. Counted per quota cell, since a
    response keeps its cell and the sheet ledger and phúc tra know each sheet's cell and investigator (the
    lists which households of a commune were sampled): a name shared by fewer than k responses of a cell
    would narrow who gave them."""
    counts: dict[tuple[int, str], int] = {}
    for cell_id, name, count in session.execute(
            waiting(round_id, _ballot_t.c.quota_cell_id, _ballot_t.c[column], sa.func.count())
            .where(_ballot_t.c[column].is_not(None)).group_by(_ballot_t.c.quota_cell_id, _ballot_t.c[column])):
        counts[cell_id, name] = count
    for cell_id, name, count in session.execute(_released(round_id, column)
                                                .where(_response_t.c[column] != POOLED_INVESTIGATORS)):
        counts[cell_id, name] = counts.get((cell_id, name), 0) + count
    return {key for key, count in counts.items() if count >= k}


def _fill_pools(session: Session, round_id: int, k: int, column: str, by_cell: dict[int, list],
                named: set[tuple[int, str]]) -> None:
    """At the close: where a cell's pool under ``*`` (its ballots released now without a name, with its
    responses already pooled) would hold 1 to k - 1 respondents, pool the cell's smallest named groups too
    (dropping them from ``named``) until it holds k or none is left. A group some of whose responses were
    already released under its name is pooled only if at least k of them were, so none is left named by
    fewer than k. A cell with fewer than k sheets in all keeps a smaller pool, as it keeps fewer than k
    respondents."""
    released = {(cell_id, name): count for cell_id, name, count in session.execute(_released(round_id, column))}
    for cell_id, rows in by_cell.items():
        names = Counter(row._mapping[column] for row in rows if row._mapping[column] is not None)
        pool = released.get((cell_id, POOLED_INVESTIGATORS), 0) + sum(
            count for name, count in names.items() if (cell_id, name) not in named)
        groups = sorted((count, name) for name, count in names.items() if (cell_id, name) in named
                        and (released.get((cell_id, name), 0) == 0 or released[cell_id, name] >= k))
        for count, name in groups:
            if not 0 < pool < k:
                break
            named.discard((cell_id, name))
            pool += count


def _unsealed(round_id: int, ballots: Iterable[tuple], today: date,
              named: dict[str, set[tuple[int, str]]]) -> tuple[list[dict], list[dict]]:
    """The response and answer rows of opened ballots, each respondent under a fresh respondent key; a paper
    ballot's investigator and commune are written if ``named`` in its cell, else (only at the close) pooled."""
    responses, answers = [], []
    for row, content in ballots:
        respondent_key = uuid.uuid4().hex
        names = {c: POOLED_INVESTIGATORS if row._mapping[c] is not None
                 and (row.quota_cell_id, row._mapping[c]) not in named[c] else row._mapping[c] for c in NAMED}
        for agency_id, values in _per_response(content):
            response_id = random_key()
            responses.append({
                "id": response_id, "uid": uuid.uuid4().hex, "round_id": round_id,
                "quota_cell_id": row.quota_cell_id, "form_code": content["form"],
                "questionnaire_version_id": content["version"], "agency_id": agency_id,
                "channel": Channel(content.get("channel", Channel.ONLINE.value)), "submitted_on": today,
                "sheet_id": None, "division_id": content["division"], "respondent_key": respondent_key,
                "surplus": content.get("surplus", False), **names,
            })
            answers += [{"id": random_key(), "response_id": response_id, "agency_id": answer_agency,
                         "item_code": code, "value": value} for answer_agency, code, value in values]
    return responses, answers


def _per_response(content: dict) -> list[tuple[int | None, list[tuple[int | None, str, str]]]]:
    """(agency rated, [(agency, item, value)]) per response of a ballot: one per agency rated, or one for
    a matrix sheet (no agency of its own) holding every agency's answers."""
    entries = [(agency_id, [(agency_id, code, value) for code, value in values.items()])
               for agency_id, values in content["answers"]]
    if content.get("sheet"):
        return [(None, [answer for _, answers in entries for answer in answers])]
    return entries
