"""Log in, log out, language preference."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from portal.config import LOCALES
from portal.crm import accounts
from portal.views.forms import LoginForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; on success go where the user was headed.

    An empty field is 422 with its message next to it; a wrong e-mail or password is 401.
    """
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    if not form.is_submitted():
        return render_template("auth/login.html", form=form)
    if not form.validate():
        return render_template("auth/login.html", form=form), 422
    user = accounts.authenticate(form.email.data, form.password.data)
    if user is None:
        form.add_errors([_("Wrong e-mail or password.")])
        return render_template("auth/login.html", form=form), 401
    login_user(user, remember=form.remember.data)
    return redirect(_safe_next(request.args.get("next")) or url_for("main.home"))


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    """End the session."""
    logout_user()
    return redirect(url_for("auth.login"))


@bp.post("/language")
@login_required
def language() -> ResponseReturnValue:
    """Save the user's language choice."""
    locale = request.form.get("locale")
    if locale in LOCALES:
        accounts.set_locale(current_user._get_current_object(), locale)
    return redirect(_safe_next(request.form.get("next")) or url_for("main.home"))
