"""ORM models for the vocabulary of the design: rounds, agencies, questionnaire versions, quota cells,
invitation codes, sheets, responses and answers, staff users and the audit log.

Invariants live in the schema (unique serials, foreign keys, check constraints on states) so that no code
path, however buggy, can store two copies of a sheet or a response in an impossible state.
"""
from __future__ import annotations

import enum
import secrets
from datetime import date, datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from survey_service.db import Base


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


#: A 64-bit key on PostgreSQL; on SQLite exactly ``INTEGER PRIMARY KEY``, so the key is the rowid itself.
RandomKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def random_key() -> int:
    """A random primary key: responses and answers carry no number that grows with time.

    Drawn above 2**32 so that it never meets the small sequential ids of rows stored before keys were random.
    """
    return 2 ** 32 + secrets.randbelow(2 ** 63 - 2 ** 32)


def _enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    """Portable enum: a VARCHAR with a CHECK constraint, storing the values (not the names)."""
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Channel(str, enum.Enum):
    ONLINE = "online"
    PAPER = "paper"


class Role(str, enum.Enum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    CLERK = "clerk"
    ANALYST = "analyst"
    #: An observer of the Fatherland Front (MTTQ) or the Veterans' Association (CCB): reviews and signs off
    #: the sample lists of a round before any sheet is issued.
    OBSERVER = "observer"
    #: The phúc tra auditor: the only role that sees the contact vault and records re-contact outcomes.
    AUDITOR = "auditor"


class CodeStatus(str, enum.Enum):
    UNUSED = "unused"
    USED = "used"
    REVOKED = "revoked"


class SheetState(str, enum.Enum):
    ISSUED = "issued"
    RETURNED = "returned"
    KEYED = "keyed"
    VERIFIED = "verified"
    VOID = "void"


class FrameKind(str, enum.Enum):
    #: A one-stop office's register of dossiers: cells are (agency, field).
    DOSSIERS = "dossiers"
    #: A list of households per village or residential group: communes are drawn by PPS, then households.
    HOUSEHOLDS = "households"


class SampleList(str, enum.Enum):
    OFFICIAL = "official"
    RESERVE = "reserve"


class ContactKind(str, enum.Enum):
    RESPONDENT = "respondent"
    FEE_RECIPIENT = "fee_recipient"


class RecheckOutcome(str, enum.Enum):
    CONFIRMED = "confirmed"
    NOT_REACHED = "not_reached"
    FAILED = "failed"


class Round(Base):
    """A survey campaign (đợt khảo sát) as stored, loaded from ``questionnaires/rounds/<code>/``.

    A round has three shapes, each named for what it is. :class:`~survey_service.questionnaires.RoundDef`
    is the round as its directory defines it, read and checked without a database (like the other ``*Def``
    types: agencies, quotas, supervision). ``Round`` is the row ``services.rounds.load_round`` writes from
    it and every service reads; a variable holding one is ``rnd`` (``round`` is Python's), and Core
    statements use its table as ``_round_t``. :class:`~survey_service.services.portal.RoundSnapshot` is the
    few columns of that row one portal request reads, as plain values. A round's code is ``Round.code``,
    and travels as ``round_code`` in every function and view that takes one.
    """

    __tablename__ = "round"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    province: Mapped[str] = mapped_column(sa.String(100))
    year: Mapped[int]
    opens_on: Mapped[date]
    closes_on: Mapped[date]
    #: Round-level switches (double-entry sampling, surplus handling, ...), from round.yaml.
    settings: Mapped[dict] = mapped_column(sa.JSON)
    #: Scoring settings (coefficients, maximum points, group weights, n_min), from methodology.yaml.
    methodology: Mapped[dict] = mapped_column(sa.JSON)
    methodology_hash: Mapped[str] = mapped_column(sa.String(64))
    #: What the round is made of, from round.yaml and supervising.yaml: ``kinds`` (the agency kinds in
    #: order, each ``{code, label, plural}``), ``own_staff_forms`` and ``supervision`` (per supervising form
    #: ``{cells_per, unit, supervisor}``), ``province_type``, ``organiser``, ``legal_basis`` and ``targets``
    #: (round.yaml's). Pages, exports and the API take their labels from it.
    structure: Mapped[dict] = mapped_column(sa.JSON)
    #: Hash of the round directory's content when it was last loaded; equal hash = nothing to do.
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    #: A demonstration round filled with generated responses (``demo setup``), never real data: every page,
    #: export and chart of it says so. Set when the round is created, never changed afterwards.
    simulated: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: Set by a supervisor to close collection before ``closes_on``.
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: The round owner's X25519 public key (base64) when ballots are sealed to it rather than to the
    #: server's secret: then only the owner's private key, given at release, opens them.
    ballot_public_key: Mapped[str | None] = mapped_column(sa.String(64))
    loaded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    agencies: Mapped[list[Agency]] = relationship(back_populates="round", order_by="Agency.id")
    forms: Mapped[list[RoundForm]] = relationship(back_populates="round", order_by="RoundForm.form_code")

    __table_args__ = (sa.CheckConstraint("opens_on <= closes_on", name="ck_round_dates"),)

    def __repr__(self) -> str:
        return f"<Round {self.code}>"

    @property
    def province_title(self) -> str:
        """The province-level unit as it is written: "tỉnh Quảng Nam", "thành phố Đà Nẵng"."""
        return f"{self.province_type} {self.province}"

    @property
    def province_type(self) -> str:
        """ "tỉnh" or "thành phố" (rounds loaded before the setting existed are provinces)."""
        return self.structure.get("province_type", "tỉnh")

    @property
    def organiser(self) -> str:
        """Who runs the survey (round.yaml ``organiser``; rounds loaded before it existed: the province's
        home affairs department)."""
        return self.structure.get("organiser") or f"Sở Nội vụ {self.province_title}"

    @property
    def kind_codes(self) -> list[str]:
        """The round's agency kinds, in their declared order."""
        return [k["code"] for k in self.structure["kinds"]]

    @property
    def kind_labels(self) -> dict[str, str]:
        """Kind code -> the Vietnamese name of one agency of the kind, in declared order."""
        return {k["code"]: k["label"] for k in self.structure["kinds"]}

    @property
    def kind_plurals(self) -> dict[str, str]:
        """Kind code -> the Vietnamese name of the kind as a group, in declared order."""
        return {k["code"]: k["plural"] for k in self.structure["kinds"]}

    @property
    def own_staff_forms(self) -> tuple[str, ...]:
        """Forms answered by the rated agency's own staff (never broken down below the minimum)."""
        return tuple(self.structure["own_staff_forms"])

    def supervision(self, form_code: str) -> dict:
        """``{cells_per, unit, supervisor}`` of a supervising form."""
        return self.structure["supervision"][form_code]


class Agency(Base):
    """An evaluated unit of a round (cơ quan được đánh giá)."""

    __tablename__ = "agency"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(sa.String(32))
    #: One of the round's declared kinds (``Round.kind_codes``).
    kind: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(255))

    round: Mapped[Round] = relationship(back_populates="agencies")
    continues: Mapped[list[AgencyContinuation]] = relationship(
        cascade="all, delete-orphan", order_by="AgencyContinuation.position"
    )

    __table_args__ = (sa.UniqueConstraint("round_id", "code", name="uq_agency_round_code"),)

    def __repr__(self) -> str:
        return f"<Agency {self.code}>"


class AgencyContinuation(Base):
    """An agency of an earlier round that an agency carries on (a merged commune, a department that took
    over another), named by round and agency code so that it holds whether or not that round is loaded."""

    __tablename__ = "agency_continuation"

    agency_id: Mapped[int] = mapped_column(sa.ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    round_code: Mapped[str] = mapped_column(sa.String(32))
    agency_code: Mapped[str] = mapped_column(sa.String(32))

    def __repr__(self) -> str:
        return f"<AgencyContinuation {self.round_code}:{self.agency_code}>"


class Division(Base):
    """A respondent's unit under a supervising form's mapping (QNA-2023 LĐ-CP: a district division,
    phòng chuyên môn cấp huyện); its respondents rate each agency in ``supervised_by``."""

    __tablename__ = "division"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    #: The supervising form whose mapping the division belongs to.
    form_code: Mapped[str] = mapped_column(sa.String(16))
    code: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(255))

    supervised_by: Mapped[list[Agency]] = relationship(secondary="division_department", order_by="Agency.id")

    __table_args__ = (sa.UniqueConstraint("round_id", "code", name="uq_division_round_code"),)

    def __repr__(self) -> str:
        return f"<Division {self.code}>"


division_department = sa.Table(
    "division_department",
    Base.metadata,
    sa.Column("division_id", sa.ForeignKey("division.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("agency_id", sa.ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True),
)


class QuestionnaireVersion(Base):
    """An immutable snapshot of a form's definition; responses point at the version they answered."""

    __tablename__ = "questionnaire_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_code: Mapped[str] = mapped_column(sa.String(16), index=True)
    version: Mapped[str] = mapped_column(sa.String(64))
    definition: Mapped[dict] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    __table_args__ = (sa.UniqueConstraint("form_code", "version", name="uq_questionnaire_version"),)

    def __repr__(self) -> str:
        return f"<QuestionnaireVersion {self.form_code}@{self.version}>"


class RoundForm(Base):
    """The questionnaire version a round currently uses for a form code."""

    __tablename__ = "round_form"

    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), primary_key=True)
    form_code: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    questionnaire_version_id: Mapped[int] = mapped_column(sa.ForeignKey("questionnaire_version.id"))

    round: Mapped[Round] = relationship(back_populates="forms")
    questionnaire_version: Mapped[QuestionnaireVersion] = relationship()

    def __repr__(self) -> str:
        return f"<RoundForm {self.form_code}>"


class QuotaCell(Base):
    """(round, form code, rated agency) with a target count. HĐ-CT rates every agency: one cell, no agency."""

    __tablename__ = "quota_cell"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    form_code: Mapped[str] = mapped_column(sa.String(16))
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    target: Mapped[int]
    #: Staff (population) count N the target was sized from; the analysis can use it as the cell's N.
    staff_count: Mapped[int | None]
    #: Closed by a supervisor: online, no new starts (started ones may finish); paper, over-target flagged.
    soft_closed: Mapped[bool] = mapped_column(default=False)

    round: Mapped[Round] = relationship()
    agency: Mapped[Agency | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint("target >= 0", name="ck_quota_cell_target"),
        sa.CheckConstraint("staff_count >= 0", name="ck_quota_cell_staff_count"),
        sa.Index(
            "uq_quota_cell", "round_id", "form_code", sa.func.coalesce(agency_id, 0), unique=True
        ),
    )

    def __repr__(self) -> str:
        return f"<QuotaCell {self.form_code}/{self.agency_id} target={self.target}>"


class CodeBatch(Base):
    """One issue of invitation codes for a quota cell, downloadable again as CSV or PDF."""

    __tablename__ = "code_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id", ondelete="CASCADE"), index=True)
    count: Mapped[int]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    quota_cell: Mapped[QuotaCell] = relationship()
    codes: Mapped[list[InvitationCode]] = relationship(back_populates="batch", order_by="InvitationCode.id")

    def __repr__(self) -> str:
        return f"<CodeBatch {self.id} x{self.count}>"


class InvitationCode(Base):
    """A one-time code for the online channel. Its row is written when the code is issued (and revoked) and
    never when it is used: using it writes a :class:`SpentCode` named by the code's mark."""

    __tablename__ = "invitation_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("code_batch.id", ondelete="CASCADE"), index=True)
    #: UNUSED or REVOKED as stored; USED is never stored, it is read from :class:`SpentCode`.
    status: Mapped[CodeStatus] = mapped_column(_enum(CodeStatus, "code_status"), default=CodeStatus.UNUSED)

    quota_cell: Mapped[QuotaCell] = relationship()
    batch: Mapped[CodeBatch] = relationship(back_populates="codes")

    def __repr__(self) -> str:
        return f"<InvitationCode {self.id} {self.status.value}>"


class SpentCode(Base):
    """That a code was used, under its mark (:func:`survey_service.services.sealing.code_mark`), never its
    text or row: rows of this table come in the order codes are used, and only the server's secret tells
    which code a mark names."""

    __tablename__ = "spent_code"

    mark: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id", ondelete="CASCADE"), index=True)
    #: Server-issued id of the submission that spent the code, so a retried POST is recognised.
    submission_id: Mapped[str] = mapped_column(sa.String(64))
    #: HMAC of the answers under a key only the respondent's page holds (never stored here), so a resend of
    #: the same submission with other answers is told apart without anything here telling the answers.
    answers_digest: Mapped[str | None] = mapped_column(sa.String(64))

    def __repr__(self) -> str:
        return f"<SpentCode cell={self.quota_cell_id}>"


class ImportedSubmission(Base):
    """That a submission of another tool (ODK Central, KoboToolbox) was imported into a round, under a digest
    of its external key, so importing the same export again adds nothing. Nothing links it to the responses
    it became: no key of theirs, and rows written in the digests' order, not the file's."""

    __tablename__ = "imported_submission"

    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), primary_key=True)
    #: HMAC-SHA256 (32 hex digits) of ``platform:key`` (Central's ``KEY``, Kobo's ``rootUuid`` or ``_uuid``)
    #: under a key derived from the server's secret and the round (``odk_imports.mark``).
    mark: Mapped[str] = mapped_column(sa.String(32), primary_key=True)

    def __repr__(self) -> str:
        return f"<ImportedSubmission round={self.round_id}>"


class Draft(Base):
    """Answers saved under a code before submission; deleted when the code is spent. Named by the code's
    mark, like :class:`SpentCode`, so that a draft deleted at submission names no code."""

    __tablename__ = "draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_mark: Mapped[str] = mapped_column(sa.String(32), unique=True)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id", ondelete="CASCADE"), index=True)
    #: LĐ-CP: the division the respondent chose.
    division_id: Mapped[int | None] = mapped_column(sa.ForeignKey("division.id"))
    #: The answers, {"<agency code>": {"<item code>": "<value>"}}, sealed with a key derived from the code
    #: and the server's secret (:mod:`survey_service.services.sealing`): a copy of the database, or a
    #: row left in its free pages after the draft is gone, does not show them.
    sealed: Mapped[str | None] = mapped_column(sa.Text)
    #: Answers of a draft saved before drafts were sealed; emptied when the draft is next saved.
    answers: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    started_on: Mapped[date] = mapped_column(default=lambda: utcnow().date())
    updated_on: Mapped[date] = mapped_column(default=lambda: utcnow().date())

    def __repr__(self) -> str:
        return f"<Draft {self.id}>"


class Ballot(Base):
    """A submitted online questionnaire, sealed until released (:mod:`survey_service.services.ballots`).

    Clear only in what a submission must show at once: its quota cell (the dashboard and the cell's quota
    count it). Everything else, the agencies rated, the answers, the division, is one sealed
    value padded to a size fixed by the form, so neither its content nor its length tells one respondent
    from another. Released into responses in shuffled batches, then deleted.
    """

    __tablename__ = "ballot"

    id: Mapped[int] = mapped_column(RandomKey, primary_key=True, autoincrement=False, default=random_key)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id", ondelete="CASCADE"), index=True)
    sealed: Mapped[str] = mapped_column(sa.Text)
    #: A citizens' round's keyed paper sheet: the Post Office investigator who handed it out, in clear so the
    #: box can hold an investigator's ballots until at least k of theirs can be released (ballots.py).
    investigator: Mapped[str | None] = mapped_column(sa.String(32))
    #: Its household's commune of residence (agency code), in clear for the same reason.
    commune: Mapped[str | None] = mapped_column(sa.String(32))

    def __repr__(self) -> str:
        return f"<Ballot cell={self.quota_cell_id}>"


class ReceiptCode(Base):
    """A code printed on a one-stop office's result slip (phiếu hẹn / biên nhận) that opens a citizens'
    round's online form once (:mod:`survey_service.services.receipts`). Stored only as a keyed digest, with
    the agency's online quota cell and the field of the procedure: never the code, never the dossier. Its
    use is a :class:`SpentCode` under the code's mark, a different keyed name, as for invitation codes."""

    __tablename__ = "receipt_code"

    digest: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(sa.String(64))

    quota_cell: Mapped[QuotaCell] = relationship()

    def __repr__(self) -> str:
        return f"<ReceiptCode cell={self.quota_cell_id} {self.field}>"


class Sheet(Base):
    """One printed paper form with a serial, bound to a quota cell."""

    __tablename__ = "sheet"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(sa.String(32), unique=True)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id", ondelete="CASCADE"), index=True)
    state: Mapped[SheetState] = mapped_column(_enum(SheetState, "sheet_state"), default=SheetState.ISSUED)
    #: Chosen for blind double entry (a second keying by another clerk).
    double_entry: Mapped[bool] = mapped_column(default=False)
    #: The sheet printed to replace this one (this one is then void).
    replaced_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sheet.id"))
    #: The questionnaire version printed on the sheet; its keyed answers are recorded against it.
    questionnaire_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("questionnaire_version.id"))
    issued_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    issued_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    #: Citizens' rounds: the Post Office investigator (điều tra viên) the sheet was handed to, by code.
    investigator: Mapped[str | None] = mapped_column(sa.String(32))
    #: Citizens' rounds: the commune (agency code) the household handed the sheet lives in, its frame cell.
    commune: Mapped[str | None] = mapped_column(sa.String(32))

    quota_cell: Mapped[QuotaCell] = relationship()
    events: Mapped[list[SheetEvent]] = relationship(back_populates="sheet", order_by="SheetEvent.id")
    keyings: Mapped[list[Keying]] = relationship(back_populates="sheet", order_by="Keying.pass_no")

    def __repr__(self) -> str:
        return f"<Sheet {self.serial} {self.state.value}>"


class SheetEvent(Base):
    """The sheet ledger: every state change with who and when."""

    __tablename__ = "sheet_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    sheet_id: Mapped[int] = mapped_column(sa.ForeignKey("sheet.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[SheetState | None] = mapped_column(_enum(SheetState, "sheet_event_from"))
    to_state: Mapped[SheetState] = mapped_column(_enum(SheetState, "sheet_event_to"))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    sheet: Mapped[Sheet] = relationship(back_populates="events")
    user: Mapped[StaffUser | None] = relationship()

    def __repr__(self) -> str:
        return f"<SheetEvent {self.sheet_id} {self.from_state}->{self.to_state}>"


#: Kinds of keyer: a clerk typing from the paper, or the machine reader with a clerk confirming what it
#: was unsure of (the clerk is then the keying's ``clerk``).
KEYER_CLERK, KEYER_READER = "clerk", "reader"


class Keying(Base):
    """One keying pass of a sheet by a clerk or by the machine reader; pass 2 is the blind double entry."""

    __tablename__ = "keying"

    id: Mapped[int] = mapped_column(primary_key=True)
    sheet_id: Mapped[int] = mapped_column(sa.ForeignKey("sheet.id", ondelete="CASCADE"))
    pass_no: Mapped[int]
    clerk_id: Mapped[int] = mapped_column(sa.ForeignKey("staff_user.id"))
    #: {"<agency code or *>": {"<item code>": "<value>"}}
    answers: Mapped[dict] = mapped_column(sa.JSON)
    keyed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    keyer: Mapped[str] = mapped_column(sa.String(16), default=KEYER_CLERK, server_default=KEYER_CLERK)
    #: A machine reading's audit trail: {"<row>:<item>": {"machine": decision, "scores": {...}, "margin": m,
    #: "confirmed": value the clerk chose}} (what was decided, how surely, and what the clerk changed).
    reading: Mapped[dict | None] = mapped_column(sa.JSON)

    sheet: Mapped[Sheet] = relationship(back_populates="keyings")
    clerk: Mapped[StaffUser] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("sheet_id", "pass_no", name="uq_keying_sheet_pass"),
        sa.CheckConstraint("pass_no IN (1, 2)", name="ck_keying_pass_no"),
    )

    def __repr__(self) -> str:
        return f"<Keying sheet={self.sheet_id} pass={self.pass_no}>"


class SheetScan(Base):
    """One page of a sheet read by machine: its reading (every bubble's score, the decisions) and the
    straightened image, sealed, kept only until the sheet is verified (an image holds the answers)."""

    __tablename__ = "sheet_scan"

    id: Mapped[int] = mapped_column(primary_key=True)
    sheet_id: Mapped[int] = mapped_column(sa.ForeignKey("sheet.id", ondelete="CASCADE"), index=True)
    page: Mapped[int]
    reading: Mapped[dict] = mapped_column(sa.JSON)
    #: AES-GCM-sealed JPEG of the straightened page; None once the sheet is verified or void.
    image: Mapped[str | None] = mapped_column(sa.Text)

    sheet: Mapped[Sheet] = relationship()

    __table_args__ = (sa.UniqueConstraint("sheet_id", "page", name="uq_sheet_scan_page"),)


class Response(Base):
    """One completed questionnaire about one rated agency (HĐ-CT: about every agency, answers carry the row).

    Holds no invitation code, address or user agent, and its date only to the day.
    """

    __tablename__ = "response"

    #: Random (:func:`random_key`); online responses are written from sealed ballots in shuffled batches
    #: (:mod:`survey_service.services.ballots`), so neither key nor storage order follows time.
    id: Mapped[int] = mapped_column(RandomKey, primary_key=True, autoincrement=False, default=random_key)
    #: Public random id (uuid4 hex), never derived from the code.
    uid: Mapped[str] = mapped_column(sa.String(32), unique=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    quota_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("quota_cell.id"), index=True)
    form_code: Mapped[str] = mapped_column(sa.String(16))
    questionnaire_version_id: Mapped[int] = mapped_column(sa.ForeignKey("questionnaire_version.id"))
    #: The agency rated; NULL only for a matrix form, whose answers carry their agency.
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id"), index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "response_channel"))
    #: The day it reached the responses: keyed or imported, or, online, released from the ballot box with
    #: the rest of its batch (:mod:`survey_service.services.ballots`), never the day it was submitted.
    submitted_on: Mapped[date] = mapped_column(index=True)
    #: Paper responses: the sheet keyed (one response per sheet, or per agency for none).
    sheet_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sheet.id"), unique=True)
    #: LĐ-CP: the respondent's division; several responses share one respondent group key.
    division_id: Mapped[int | None] = mapped_column(sa.ForeignKey("division.id"))
    #: Random id shared by the responses one respondent gave under one code (LĐ-CP rates several
    #: departments); the analysis uses it as the primary sampling unit.
    respondent_key: Mapped[str] = mapped_column(sa.String(32), index=True)
    #: Arrived when its cell was already at target (paper): kept, flagged, out of the analysis by default.
    surplus: Mapped[bool] = mapped_column(default=False)
    #: Citizens' rounds, paper: the investigator who handed the sheet out (never the sheet), written only
    #: when that investigator has at least k keyed sheets of the response's quota cell, so phúc tra can
    #: quarantine them; :data:`POOLED_INVESTIGATORS` for the others, released at the close.
    investigator: Mapped[str | None] = mapped_column(sa.String(32))
    #: Citizens' rounds, paper: the household's commune of residence, written under the same rule (at least
    #: k keyed sheets of the quota cell name it; else pooled at the close).
    commune: Mapped[str | None] = mapped_column(sa.String(32))

    quota_cell: Mapped[QuotaCell] = relationship()
    agency: Mapped[Agency | None] = relationship()
    questionnaire_version: Mapped[QuestionnaireVersion] = relationship()
    answers: Mapped[list[Answer]] = relationship(
        back_populates="response", cascade="all, delete-orphan", order_by="Answer.item_code"
    )

    def __repr__(self) -> str:
        return f"<Response {self.uid} {self.form_code}>"


#: :attr:`Response.investigator` (and :attr:`Response.commune`) of responses whose investigators (communes) had
#: fewer than k sheets of their quota cell at the close, or whose cell's pool the close filled up to k with them.
POOLED_INVESTIGATORS = "*"


class Answer(Base):
    """One answer: an option code ("1".."5", "K") for scale items, the text for free-text items."""

    __tablename__ = "answer"

    id: Mapped[int] = mapped_column(RandomKey, primary_key=True, autoincrement=False, default=random_key)
    response_id: Mapped[int] = mapped_column(
        RandomKey, sa.ForeignKey("response.id", ondelete="CASCADE"), index=True)
    #: The agency this answer is about (matrix rows); NULL for a sheet-level free text of a matrix form.
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id"))
    item_code: Mapped[str] = mapped_column(sa.String(16))
    value: Mapped[str] = mapped_column(sa.Text)

    response: Mapped[Response] = relationship(back_populates="answers")

    __table_args__ = (
        sa.Index(
            "uq_answer", "response_id", sa.func.coalesce(agency_id, 0), "item_code", unique=True
        ),
    )

    def __repr__(self) -> str:
        return f"<Answer {self.item_code}={self.value!r}>"


class StaffUser(Base):
    """A staff account: admin, supervisor, postal clerk, analyst, observer (MTTQ/CCB) or phúc tra auditor."""

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(255), default="")
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    active: Mapped[bool] = mapped_column(default=True)
    #: Part of the id kept in the session cookie; raising it ends every session of the account (logout,
    #: a new password), so a copied cookie stops working.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    #: SHA-256 of the API token; the token itself is shown once.
    api_token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    #: When the API token stops working (a token without one never works).
    api_token_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    # Flask-Login protocol, kept here so the web layer needs no wrapper class.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}.{self.session_generation}"

    def __repr__(self) -> str:
        return f"<StaffUser {self.username} {self.role.value}>"


class Frame(Base):
    """A sampling frame of a round (khung mẫu): the units a sample is drawn from, its design once drawn, and
    the observer's sign-off of the official and reserve lists. Sheets of a round with a frame are issued
    only once every frame of the round is signed off."""

    __tablename__ = "frame"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    kind: Mapped[FrameKind] = mapped_column(_enum(FrameKind, "frame_kind"))
    #: What the frame is, as the pages name it (e.g. the file it came from).
    name: Mapped[str] = mapped_column(sa.String(255))
    imported_on: Mapped[date]
    imported_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    #: The design the lists were drawn with (margin, target precision, reserve share, communes drawn) and,
    #: per cell, its population, sample and reserve sizes; NULL until the sample is drawn.
    design: Mapped[dict | None] = mapped_column(sa.JSON)
    #: Seed of the random generator the lists were drawn with: drawing again with it gives the same lists.
    seed: Mapped[int | None] = mapped_column(sa.BigInteger)
    sampled_on: Mapped[date | None]
    signed_off_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    signed_off_on: Mapped[date | None]
    #: The observer's organisation ("MTTQ" or "CCB").
    signed_off_as: Mapped[str | None] = mapped_column(sa.String(16))
    #: SHA-256 of the lists as signed off.
    signed_lists_hash: Mapped[str | None] = mapped_column(sa.String(64))

    round: Mapped[Round] = relationship()
    signed_off_by: Mapped[StaffUser | None] = relationship(foreign_keys=[signed_off_by_id])

    __table_args__ = (sa.UniqueConstraint("round_id", "name", name="uq_frame_round_name"),)

    def __repr__(self) -> str:
        return f"<Frame {self.id} {self.kind.value}>"


class FrameUnit(Base):
    """One unit of a frame (a dossier or a household), and its place on the official or reserve list."""

    __tablename__ = "frame_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    frame_id: Mapped[int] = mapped_column(sa.ForeignKey("frame.id", ondelete="CASCADE"), index=True)
    #: Its row in the imported file.
    line: Mapped[int]
    #: The agency of its cell: the office that handled the dossier, or the household's commune.
    agency_id: Mapped[int] = mapped_column(sa.ForeignKey("agency.id", ondelete="CASCADE"))
    #: Dossiers: the field (lĩnh vực) of the procedure.
    field: Mapped[str] = mapped_column(sa.String(100), default="")
    #: Households: the village or residential group (thôn, tổ dân phố).
    village: Mapped[str] = mapped_column(sa.String(100), default="")
    #: The register's own identifier of the unit (the office's dossier or household number).
    ref: Mapped[str] = mapped_column(sa.String(64))
    #: What the printed list shows to find the unit (head of household, address), if given.
    label: Mapped[str] = mapped_column(sa.String(255), default="")
    sample_list: Mapped[SampleList | None] = mapped_column(_enum(SampleList, "sample_list"))
    #: Order on its list within its cell (replacements are taken from the reserve in this order).
    list_position: Mapped[int | None]
    #: An official unit that could not be surveyed: the reserve unit that replaced it, and why.
    replaced_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("frame_unit.id"))
    replaced_reason: Mapped[str | None] = mapped_column(sa.String(255))

    agency: Mapped[Agency] = relationship()

    __table_args__ = (sa.UniqueConstraint("frame_id", "ref", name="uq_frame_unit_frame_ref"),)

    def __repr__(self) -> str:
        return f"<FrameUnit {self.ref}>"


class Contact(Base):
    """The contact vault: a name and phone number for re-contacting the person who answered a sheet or was
    paid for it, keyed by the sheet's serial, sealed at rest (:mod:`survey_service.services.phuctra`).

    No foreign key to the sheet and none to a response: nothing joins it to answers. Deleted when the
    round's phúc tra closes."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    serial: Mapped[str] = mapped_column(sa.String(32))
    kind: Mapped[ContactKind] = mapped_column(_enum(ContactKind, "contact_kind"))
    sealed: Mapped[str] = mapped_column(sa.Text)

    __table_args__ = (sa.UniqueConstraint("round_id", "serial", "kind", name="uq_contact_round_serial_kind"),)

    def __repr__(self) -> str:
        return f"<Contact {self.serial} {self.kind.value}>"


class AnswerPattern(Base):
    """A keyed mark of the answers keyed from a paper sheet (:func:`survey_service.services.phuctra.pattern_mark`):
    equal marks among one investigator's sheets flag identical answers for phúc tra. The mark is an HMAC
    under a key derived from the server's secret, so it tells nothing of the answers themselves; the rows
    are deleted when phúc tra closes."""

    __tablename__ = "answer_pattern"

    sheet_id: Mapped[int] = mapped_column(sa.ForeignKey("sheet.id", ondelete="CASCADE"), primary_key=True)
    mark: Mapped[str] = mapped_column(sa.String(32))

    def __repr__(self) -> str:
        return f"<AnswerPattern sheet={self.sheet_id}>"


class Recheck(Base):
    """A round's phúc tra: opened with a draw of returned sheets, closed (and its vault deleted) once done."""

    __tablename__ = "recheck"

    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), primary_key=True)
    #: The random share drawn per investigator and commune, and the seed it was drawn with.
    share: Mapped[float]
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    opened_on: Mapped[date]
    closed_on: Mapped[date | None]

    def __repr__(self) -> str:
        return f"<Recheck round={self.round_id}>"


class RecheckItem(Base):
    """A sheet drawn for phúc tra, why, and what re-contacting its respondent found (process only: never an
    answer)."""

    __tablename__ = "recheck_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    sheet_id: Mapped[int] = mapped_column(sa.ForeignKey("sheet.id", ondelete="CASCADE"), unique=True)
    #: The investigator who handled the sheet, by code (:func:`survey_service.services.phuctra.sheet_investigators`).
    investigator: Mapped[str | None] = mapped_column(sa.String(64))
    #: Why it was drawn: "random", "identical" (same answers as another sheet of the same hand), "busy_day".
    reasons: Mapped[list] = mapped_column(sa.JSON)
    reached: Mapped[bool | None]
    received: Mapped[bool | None]
    self_filled: Mapped[bool | None]
    prompted: Mapped[bool | None]
    paid: Mapped[bool | None]
    outcome: Mapped[RecheckOutcome | None] = mapped_column(_enum(RecheckOutcome, "recheck_outcome"))
    recorded_on: Mapped[date | None]
    recorded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))

    sheet: Mapped[Sheet] = relationship()

    def __repr__(self) -> str:
        return f"<RecheckItem sheet={self.sheet_id} {self.outcome}>"


class Quarantine(Base):
    """An investigator whose phúc tra failures passed the round's threshold: their sheets are left out of
    the index until an auditor lifts it after review."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("round.id", ondelete="CASCADE"), index=True)
    investigator: Mapped[str] = mapped_column(sa.String(64))
    since: Mapped[date]
    failures: Mapped[int]
    checked: Mapped[int]
    lifted_on: Mapped[date | None]
    lifted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    lift_reason: Mapped[str | None] = mapped_column(sa.String(255))

    __table_args__ = (sa.UniqueConstraint("round_id", "investigator", name="uq_quarantine_round_investigator"),)

    def __repr__(self) -> str:
        return f"<Quarantine round={self.round_id} investigator={self.investigator}>"


class AuditEvent(Base):
    """Who did what and when, with the old and new value."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    #: "staff", "cli", "respondent" or "system": who acted when there is no staff user.
    actor: Mapped[str] = mapped_column(sa.String(32), default="staff")
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(sa.String(32))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    old_value: Mapped[dict | list | str | None] = mapped_column(sa.JSON)
    new_value: Mapped[dict | list | str | None] = mapped_column(sa.JSON)

    user: Mapped[StaffUser | None] = relationship()

    def __repr__(self) -> str:
        return f"<AuditEvent {self.action} {self.object_type}:{self.object_id}>"


class AppendOnlyError(RuntimeError):
    """Something tried to change or delete an audit event."""


#: Triggers that keep the audit log append-only in the database itself, whatever connects to it: any
#: UPDATE or DELETE of audit_event fails. Used by ``create_all`` below and by the migration that adds them.
#: (TRUNCATE and DROP TABLE, which only the table's owner may run, are not blocked: restores need them.)
AUDIT_APPEND_ONLY_DDL = {
    "sqlite": [
        "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END",
        "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP; END $$",
        "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
    ],
}
for _dialect, _statements in AUDIT_APPEND_ONLY_DDL.items():
    for _statement in _statements:
        sa.event.listen(AuditEvent.__table__, "after_create",
                        sa.DDL(_statement.replace("%", "%%")).execute_if(dialect=_dialect))


@sa.event.listens_for(AuditEvent, "before_update")
@sa.event.listens_for(AuditEvent, "before_delete")
def _refuse_changed_event(_mapper, _connection, target: AuditEvent) -> None:
    raise AppendOnlyError(f"The audit log is append-only: {target!r} cannot be changed or deleted.")


@sa.event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state) -> None:
    table = getattr(state.statement, "table", None)
    if (state.is_update or state.is_delete) and getattr(table, "name", None) == AuditEvent.__tablename__:
        raise AppendOnlyError("The audit log is append-only: UPDATE and DELETE of audit_event are refused.")


class RateCounter(Base):
    """Fixed-window request counters shared by every server process (rate limits)."""

    __tablename__ = "rate_counter"

    #: e.g. "code:<sha256 of client address>"
    key: Mapped[str] = mapped_column(sa.String(96), primary_key=True)
    window_start: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(default=0)

    def __repr__(self) -> str:
        return f"<RateCounter {self.key} {self.count}>"


class LoginThrottle(Base):
    """Failed logins on one counter: a username from a client address, a username from every address, an
    address with every username, or a username on one device; kept only as keyed hashes."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    #: The username's hash alone (an address's counter: its own key), so that an admin can clear an
    #: account's delays from every address and device.
    account: Mapped[str] = mapped_column(sa.String(64), index=True)
    failures: Mapped[int]
    #: Epoch milliseconds before which the counter's next attempt is refused unchecked.
    blocked_until: Mapped[int] = mapped_column(sa.BigInteger)
    last_failure: Mapped[int] = mapped_column(sa.BigInteger)

    def __repr__(self) -> str:
        return f"<LoginThrottle {self.failures}>"


class RateWindowKey(Base):
    """The random key hiding client addresses in one window's rate counters. It is created with the
    window's first counter and deleted with the window, so old counters cannot be turned back into
    addresses by anyone, even with SECRET_KEY."""

    __tablename__ = "rate_window_key"

    scope: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    window_start: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    secret: Mapped[str] = mapped_column(sa.String(64))

    def __repr__(self) -> str:
        return f"<RateWindowKey {self.scope} {self.window_start}>"
