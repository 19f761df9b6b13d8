"""Sampling frames and sample lists: supervisors import a frame, draw the lists, print them and replace units
from the reserve; observers of the MTTQ or the CCB review the lists and sign them off."""
from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user

from survey_service.db import get_session
from survey_service.models import FrameKind, Role, SampleList
from survey_service.services import frames, rounds
from survey_service.services.frames import FrameError
from survey_service.web import confirmation_page, default_round, note_round
from survey_service.web.auth import role_required

bp = Blueprint("frames", __name__)

SUPERVISOR = (Role.SUPERVISOR,)
READERS = (Role.SUPERVISOR, Role.OBSERVER)
NAV = [
    ("frames.index", "Khung mẫu và danh sách mẫu", "Nhập khung mẫu, chọn mẫu, in danh sách chính thức và dự phòng.",
     SUPERVISOR),
    ("frames.index", "Ký duyệt danh sách mẫu", "Xem và ký duyệt danh sách mẫu trước khi phát phiếu (MTTQ, Hội CCB).",
     (Role.OBSERVER,)),
]
MIME = {"csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _frame(frame_id: int):
    frame = frames.get_frame(get_session(), frame_id)
    note_round(frame.round)
    return frame


@bp.route("/frames/")
@role_required(*READERS)
def index():
    rnd = default_round()
    return render_template("frames/index.html", round=rnd, frames=frames.round_frames(get_session(), rnd.id),
                           kinds=frames.KIND_LABELS, errors=[])


@bp.route("/frames/import", methods=["POST"])
@role_required(*SUPERVISOR)
def import_frame():
    session = get_session()
    rnd = default_round()
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise FrameError("Hãy chọn tệp CSV hoặc XLSX của khung mẫu.", 400)
        if request.form.get("kind") not in {k.value for k in FrameKind}:
            raise FrameError("Hãy chọn loại khung mẫu.", 400)
        frame = frames.import_frame(session, rnd, request.form["kind"], upload.read(), upload.filename,
                                    name=request.form.get("name"), today=rounds.local_today(), by=current_user)
    except FrameError as exc:
        session.rollback()
        return render_template("frames/index.html", round=rnd, frames=frames.round_frames(session, rnd.id),
                               kinds=frames.KIND_LABELS, errors=exc.errors[:frames.MAX_ERRORS],
                               more=max(0, len(exc.errors) - frames.MAX_ERRORS)), exc.status
    session.commit()
    flash(f"Đã nhập khung mẫu “{frame.name}”.", "info")
    return redirect(url_for("frames.show", frame_id=frame.id))


def _design(form) -> frames.Design:
    def number(name, default=None, kind=float):
        text = (form.get(name) or "").strip().replace(",", ".")
        if not text:
            return default
        try:
            return kind(text)
        except ValueError:
            raise FrameError(f"Giá trị “{text[:20]}” của ô {name} không phải là số.", 400) from None

    return frames.Design(margin=number("margin", 0.05), target=number("target"),
                         target_margin=number("target_margin"), reserve_share=number("reserve", 0.2),
                         communes=number("communes", kind=int))


@bp.route("/frames/<int:frame_id>")
@role_required(*READERS)
def show(frame_id: int):
    session = get_session()
    frame = _frame(frame_id)
    design = frames.design_of(frame) or frames.Design()
    cells = frames.drawn_cells(frame) if frame.sampled_on else frames.plan(session, frame, design)
    return render_template("frames/show.html", frame=frame, round=frame.round, cells=cells, design=design,
                           kinds=frames.KIND_LABELS, organisations=frames.ORGANISATIONS,
                           lists=frames.lists(session, frame) if frame.sampled_on else None, SampleList=SampleList,
                           list_labels=frames.LIST_LABELS)


@bp.route("/frames/<int:frame_id>/sample", methods=["POST"])
@role_required(*SUPERVISOR)
def sample(frame_id: int):
    session = get_session()
    frame = _frame(frame_id)
    cells = frames.draw(session, frame, _design(request.form), today=rounds.local_today(), by=current_user)
    session.commit()
    flash(f"Đã chọn {sum(c.sample for c in cells)} đơn vị chính thức và {sum(c.reserve for c in cells)} dự phòng "
          f"(hạt giống {frame.seed}).", "info")
    return redirect(url_for("frames.show", frame_id=frame.id))


@bp.route("/frames/<int:frame_id>/lists.<fmt>")
@role_required(*READERS)
def export(frame_id: int, fmt: str):
    frame = _frame(frame_id)
    data = frames.export_lists(get_session(), frame, fmt)
    return Response(data, mimetype=MIME[fmt], headers={
        "Content-Disposition": f'attachment; filename="danh-sach-mau-{frame.round.code}-{frame.id}.{fmt}"'})


@bp.route("/frames/<int:frame_id>/replace", methods=["POST"])
@role_required(*SUPERVISOR)
def replace(frame_id: int):
    session = get_session()
    frame = _frame(frame_id)
    unit = frames.find_unit(session, frame, request.form.get("ref", ""))
    spare = frames.replace(session, unit, reason=request.form.get("reason", ""), by=current_user)
    session.commit()
    flash(f"Đã thay {unit.ref} bằng {spare.ref} (số {spare.list_position} của danh sách dự phòng).", "info")
    return redirect(url_for("frames.show", frame_id=frame.id) + "#lists")


@bp.route("/frames/<int:frame_id>/sign-off", methods=["POST"])
@role_required(Role.OBSERVER)
def sign_off(frame_id: int):
    session = get_session()
    frame = _frame(frame_id)
    organisation = request.form.get("organisation", "")
    if organisation not in frames.ORGANISATIONS:
        raise FrameError("Hãy chọn tổ chức của quan sát viên: MTTQ hoặc CCB.", 400)
    asking = confirmation_page(
        "Ký duyệt danh sách mẫu",
        f"Thay mặt {frames.ORGANISATIONS[organisation]}, xác nhận đã kiểm tra danh sách chính thức và dự phòng "
        f"của khung mẫu “{frame.name}”. Sau khi ký duyệt, mẫu không được chọn lại và phiếu bắt đầu được phát.",
        "Ký duyệt", url_for("frames.show", frame_id=frame.id))
    if asking is not None:
        return asking
    frames.sign_off(session, frame, organisation=organisation, by=current_user, today=rounds.local_today())
    session.commit()
    flash(f"Đã ký duyệt danh sách mẫu “{frame.name}”.", "info")
    return redirect(url_for("frames.show", frame_id=frame.id))


@bp.route("/frames/<int:frame_id>/delete-sample", methods=["POST"])
@role_required(*SUPERVISOR)
def delete_sample(frame_id: int):
    session = get_session()
    frame = _frame(frame_id)
    asking = confirmation_page(
        "Xóa mẫu đã chọn", f"Xóa danh sách chính thức và dự phòng của khung mẫu “{frame.name}” (hạt giống "
        f"{frame.seed}). Khung mẫu được giữ lại để chọn mẫu lại.", "Xóa mẫu",
        url_for("frames.show", frame_id=frame.id))
    if asking is not None:
        return asking
    frames.delete_sample(session, frame, by=current_user)
    session.commit()
    flash(f"Đã xóa mẫu đã chọn của khung mẫu “{frame.name}”.", "info")
    return redirect(url_for("frames.show", frame_id=frame.id))


@bp.route("/frames/<int:frame_id>/delete", methods=["POST"])
@role_required(*SUPERVISOR)
def delete(frame_id: int):
    session = get_session()
    frame = _frame(frame_id)
    name, round_code = frame.name, frame.round.code
    asking = confirmation_page(
        "Xóa khung mẫu", f"Xóa khung mẫu “{name}” của đợt {round_code}, mọi đơn vị và danh sách mẫu của nó.",
        "Xóa khung mẫu", url_for("frames.show", frame_id=frame.id))
    if asking is not None:
        return asking
    frames.delete_frame(session, frame, by=current_user)
    session.commit()
    flash(f"Đã xóa khung mẫu “{name}”.", "info")
    return redirect(url_for("frames.index", round=round_code))
