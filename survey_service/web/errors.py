"""Error pages in Vietnamese. A service's refusal (:class:`~survey_service.services.errors.ServiceError`)
rolls back the request's transaction and answers with its status and message, so views need no
try/except of their own; a 500 rolls back too, and a database that cannot be reached or written
(restarting, read-only, full) is a 503 with ``Retry-After``: nothing of the request was
acknowledged, and a retried submission is recognised, so trying again later is safe.

The error log gets what failed and where, never an exception's message: that can hold what the request was
writing (a failing INSERT's values are the answers), and logs are kept longer, and read by more people,
than the answers are.
"""
from __future__ import annotations

import traceback

import sqlalchemy as sa
from flask import Flask, current_app, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from survey_service.services.errors import ServiceError

MESSAGES = {
    400: ("Yêu cầu không hợp lệ", "Dữ liệu gửi lên không hợp lệ."),
    401: ("Chưa xác thực", "Bạn cần đăng nhập hoặc cung cấp mã truy cập hợp lệ."),
    403: ("Không có quyền", "Tài khoản của bạn không có quyền thực hiện thao tác này."),
    404: ("Không tìm thấy", "Trang bạn tìm không tồn tại."),
    405: ("Phương thức không được phép", "Thao tác này không được hỗ trợ tại địa chỉ này."),
    409: ("Xung đột dữ liệu", "Dữ liệu đã thay đổi hoặc đã được ghi nhận trước đó."),
    413: ("Dữ liệu quá lớn", "Tệp hoặc nội dung gửi lên vượt quá dung lượng cho phép."),
    422: ("Dữ liệu không hợp lệ", "Dữ liệu gửi lên không hợp lệ."),
    423: ("Tài khoản bị khóa", "Tài khoản tạm thời bị khóa."),
    503: ("Hệ thống tạm thời gián đoạn", "Hệ thống tạm thời không truy cập được cơ sở dữ liệu. Vui lòng thử "
          "lại sau ít phút; gửi lại cùng một phiếu không làm phiếu bị ghi hai lần."),
    429: ("Quá nhiều yêu cầu", "Bạn đã thử quá nhiều lần. Vui lòng đợi một lúc rồi thử lại."),
    500: ("Lỗi hệ thống", "Đã có lỗi xảy ra. Dữ liệu của bạn chưa bị thay đổi; vui lòng thử lại."),
}


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ServiceError, _service_error)
    for error in UNAVAILABLE:
        app.register_error_handler(error, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)


def render_error(code: int, detail: str | None = None):
    title, default = MESSAGES.get(code, (f"Lỗi {code}", ""))
    message = detail or default
    if request.path.startswith("/api/"):
        return jsonify(error=title, message=message, status=code), code
    return render_template("errors/error.html", code=code, title=title, message=message), code


def _csrf_error(exc: CSRFError):
    return render_error(400, "Phiên làm việc đã hết hạn hoặc biểu mẫu thiếu mã bảo mật (CSRF). "
                             "Vui lòng tải lại trang và thử lại.")


def _service_error(exc: ServiceError):
    """A request a service refused: nothing of it is kept, and the user reads why."""
    _rollback()
    return render_error(exc.status, str(exc) or None)


#: Headers an error must keep (a 405 names the allowed methods, a 429 or 503 when to retry).
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def _http_error(exc: HTTPException):
    # Werkzeug's stock descriptions are English; only messages we wrote ourselves are shown.
    detail = exc.description if exc.description != type(exc).description else None
    body, code = render_error(exc.code or 500, detail)
    headers = [(k, v) for k, v in exc.get_headers() if k in KEPT_HEADERS]
    if exc.response is not None:
        headers += [(k, v) for k, v in exc.response.headers.items() if k in KEPT_HEADERS]
    return body, code, headers


#: The database is down, restarting, unreachable, read-only or full; or every pooled connection is busy.
UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def _database_unavailable(exc: Exception):
    _rollback()
    current_app.logger.error("Database unavailable: %s", str(exc).splitlines()[0])
    response, status = render_error(503)
    response = current_app.make_response((response, status))
    response.headers["Retry-After"] = str(current_app.config["UNAVAILABLE_RETRY_AFTER_SECONDS"])
    response.headers["Cache-Control"] = "no-store"
    return response


def _rollback() -> None:
    session = g.get("db_session")
    if session is None:
        return
    try:
        session.rollback()
    except sa.exc.SQLAlchemyError:  # the connection is already gone; closing the session discards it
        session.invalidate()


def _unexpected(exc: Exception):
    _rollback()
    current_app.logger.error("Unhandled error %s in %s\n%s", _kinds(exc), request.endpoint, _where(exc))
    if current_app.config.get("PROPAGATE_EXCEPTIONS") and current_app.testing:
        raise exc
    return render_error(500)


def _kinds(exc: BaseException) -> str:
    """The exception's type and those of its causes (``sqlalchemy.exc.DataError <- psycopg.DataError``)."""
    kinds, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        kinds.append(f"{type(exc).__module__}.{type(exc).__qualname__}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(kinds)


def _where(exc: BaseException) -> str:
    """The traceback's frames (file, line, function, source line), without the exception's message."""
    return "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__))).rstrip()
