"""E-mail and merge-field validation, with Mailchimp's messages (API-NOTES §1.7, §5).

Where the real rule is unknown the rule here is deterministic and documented in
``docs/simulator.md`` ("Assumptions").
"""

from __future__ import annotations

import re
from datetime import datetime

from . import problems

EMAIL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
FAKE_DOMAINS = frozenset({"example.com", "example.net", "example.org", "test.com", "mailinator.com"})
FAKE_LOCAL_PARTS = frozenset({"test", "asdf", "qwerty", "fake", "noemail"})
TEXT_MAX = 255
MERGE_TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio",
               "dropdown", "birthday", "zip")


def email_problem(email: str) -> str | None:
    """The Mailchimp message for an unacceptable address, or None when it is acceptable.

    Syntax first ("Please provide a valid email address."), then the fake-looking rule:
    a domain in FAKE_DOMAINS or a local part in FAKE_LOCAL_PARTS.
    """
    if not EMAIL_RE.match(email) or ".." in email or email.split("@")[0].startswith(".") \
            or email.split("@")[0].endswith("."):
        return "Please provide a valid email address."
    local, domain = email.lower().rsplit("@", 1)
    if domain in FAKE_DOMAINS or local in FAKE_LOCAL_PARTS:
        return f"{email} looks fake or invalid, please enter a real email address."
    return None


def check_email(email: str) -> None:
    """Raise the 400 Invalid Resource that Mailchimp answers for a bad or fake address."""
    message = email_problem(email)
    if message:
        raise problems.invalid(message)


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value).replace(",", ""))
    except ValueError:
        return False
    return True


def _valid_date(value: str, fmt: str) -> bool:
    patterns = {"MM/DD/YYYY": "%m/%d/%Y", "DD/MM/YYYY": "%d/%m/%Y", "MM/DD": "%m/%d",
                "DD/MM": "%d/%m"}
    candidates = [patterns.get(fmt.upper(), "%m/%d/%Y"), "%Y-%m-%d"]
    if len(fmt) <= 5:
        candidates.append("%m/%d")
    for pattern in candidates:
        try:
            datetime.strptime(value if "%Y" in pattern else value + "/2000",
                              pattern if "%Y" in pattern else pattern + "/%Y")
            return True
        except ValueError:
            continue
    return False


def _is_empty(value) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, dict):
        return all(not str(v).strip() for v in value.values())
    return False


def value_message(field, value) -> str | None:
    """The message for one merge value that does not fit its field's type, or None."""
    kind = field.type
    if kind == "text" and type(value) is str:  # the common case, kept cheap for batches
        return None if len(value) <= TEXT_MAX else f"Value must be {TEXT_MAX} characters or fewer"
    if _is_empty(value):
        return None
    if kind == "address":
        if isinstance(value, str):
            parts = [p for p in value.split("  ") if p.strip()]
            return None if len(parts) >= 4 else "Please enter a complete address"
        needed = ("addr1", "city", "state", "zip")
        if not all(str(value.get(k, "")).strip() for k in needed):
            return "Please enter a complete address"
        return None
    if isinstance(value, dict):
        return "Please enter a value"
    text = str(value)
    if kind == "number":
        return None if _is_number(value) else "Please enter a number"
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        ok = re.fullmatch(r"[+0-9 ().\-/]+", text) and 6 <= len(digits) <= 20
        return None if ok else "Please enter a valid phone number"
    if kind in ("date", "birthday"):
        default = "MM/DD" if kind == "birthday" else "MM/DD/YYYY"
        fmt = (field.options or {}).get("date_format") or default
        return None if _valid_date(text, fmt) else "Please enter a valid date"
    if kind in ("url", "imageurl"):
        return None if re.match(r"^https?://[^\s/]+\.[^\s]+", text) else "Please enter a valid URL"
    if kind in ("radio", "dropdown"):
        choices = (field.options or {}).get("choices") or []
        return None if text in choices else "Please select a valid option"
    if kind == "zip":
        return None if re.fullmatch(r"[0-9A-Za-z \-]{3,10}", text) else "Please enter a valid zip code"
    if len(text) > TEXT_MAX:
        return f"Value must be {TEXT_MAX} characters or fewer"
    return None


def check_merge_shapes(merge_fields) -> None:
    """Schema check of ``merge_fields``: an object of strings, numbers or address objects."""
    if merge_fields is None:
        return
    if not isinstance(merge_fields, dict):
        raise problems.schema_invalid("merge_fields", "This value should be of type object")
    for tag, value in merge_fields.items():
        if value is None or isinstance(value, (list, bool)):
            raise problems.schema_invalid(
                f"merge_fields.{tag}", "Data did not match any of the schemas described in anyOf.")


def merge_errors(fields_by_tag: dict, values: dict, *, creating: bool,
                 skip_required: bool) -> list:
    """Every ``{field, message}`` error for a write of ``values`` (API-NOTES §1.7, §5).

    Unknown tags are ignored. A required field must be given a value when the member is
    created and cannot be emptied later, unless ``skip_merge_validation`` was asked for.
    """
    errors = []
    upper = {k.upper(): v for k, v in (values or {}).items()}
    for tag, field in fields_by_tag.items():
        if tag in upper:
            value = upper[tag]
            message = value_message(field, value)
            if message:
                errors.append({"field": tag, "message": message})
                continue
            if field.required and _is_empty(value) and not skip_required:
                errors.append({"field": tag, "message": "Please enter a value"})
        elif field.required and not skip_required and creating:
            if _is_empty(field.default_value):
                errors.append({"field": tag, "message": "Please enter a value"})
    return errors
