"""Log in, log out, language preference.

Logging in starts a fresh session (nothing from before it, CSRF token included, carries over)
and goes only to a path on this site (:func:`portal.security.safe_next`). Failed logins are
throttled per account and per address (429 with the wait). Logging out ends every session of
the user, the remember-me cookie included: a copied cookie stops working at once.
"""
from __future__ import annotations

import math

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user

from portal.config import LOCALES
from portal.crm import accounts
from portal.security import LoginThrottled, safe_next
from portal.views.forms import LoginForm

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; on success go where the user was headed (a path on this site only).

    An empty field is 422 with its message next to it; a wrong e-mail or password is 401; too
    many failures for the account or from the address are 429 with the wait (``Retry-After``).
    """
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    if not form.is_submitted():
        return render_template("auth/login.html", form=form)
    if not form.validate():
        return render_template("auth/login.html", form=form), 422
    try:
        user = accounts.authenticate(form.email.data, form.password.data, request.remote_addr or "")
    except LoginThrottled as exc:
        minutes = math.ceil(exc.retry_after / 60)
        form.add_errors([ngettext("Too many failed attempts. Wait %(num)d minute before trying again.",
                                  "Too many failed attempts. Wait %(num)d minutes before trying again.", minutes)])
        return render_template("auth/login.html", form=form), 429, {"Retry-After": str(exc.retry_after)}
    if user is None:
        form.add_errors([_("Wrong e-mail or password.")])
        return render_template("auth/login.html", form=form), 401
    target = safe_next(request.args.get("next")) or url_for("main.home")
    session.clear()  # a new session at login: nothing planted before it survives (CSRF token included)
    login_user(user, remember=form.remember.data)
    return redirect(target)


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    """End every session of the user (this one, other devices, the remember-me cookie)."""
    accounts.end_sessions(current_user._get_current_object())
    session.clear()
    logout_user()  # after the clear: it asks the browser to drop the remember-me cookie
    return redirect(url_for("auth.login"))


@bp.post("/language")
@login_required
def language() -> ResponseReturnValue:
    """Save the user's language choice."""
    locale = request.form.get("locale")
    if locale in LOCALES:
        accounts.set_locale(current_user._get_current_object(), locale)
    return redirect(safe_next(request.form.get("next")) or url_for("main.home"))
