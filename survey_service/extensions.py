"""Unbound extension instances, bound to the app in the factory."""
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


class StaffLoginManager(LoginManager):
    """Flask-Login without its remember-me cookie.

    Staff log in without "remember me", so the service never sets that cookie and any such cookie is not
    ours; it is ignored instead of checked, since Flask-Login compares it with ``hmac.compare_digest``,
    which raises TypeError (a 500) on non-ASCII text instead of refusing it.
    """

    def _load_user_from_remember_cookie(self, cookie):
        return None


csrf = CSRFProtect()
login_manager = StaffLoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Vui lòng đăng nhập để tiếp tục."
login_manager.login_message_category = "warning"
login_manager.session_protection = "strong"
