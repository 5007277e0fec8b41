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
    text = str(value)
    if kind == "number":
        return None if _is_number(value) else "Please enter a number"
    if kind == "phone" and str((field.options or {}).get("phone_format") or "none").upper() == "US":
        # only the US format is checked; "none" (the default, "International") takes any text
        digits = re.sub(r"\D", "", text)
        ok = re.fullmatch(r"[+0-9 ().\-]+", text) and (
            len(digits) == 10 or (len(digits) == 11 and digits.startswith("1")))
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


def json_type(value) -> str:
    """The JSON type name of a decoded value, as Mailchimp's schema messages spell it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def wrong_type(expected: str, value) -> str:
    """``Schema describes string, NULL found instead`` (API-NOTES §1.7)."""
    return f"Schema describes {expected}, {json_type(value)} found instead"


ANY_OF = "Data did not match any of the schemas described in anyOf."
NOT_ACCEPTED = "Data presented is not one of the accepted values"


def merge_shape_errors(fields_by_tag: dict | None, merge_fields, prefix: str = "") -> list:
    """Schema errors of ``merge_fields``: an object whose values are strings or numbers, or
    address objects for address fields (``fields_by_tag`` None: any object is allowed)."""
    if merge_fields is None:
        return []
    if not isinstance(merge_fields, dict):
        return [{"field": prefix + "merge_fields", "message": wrong_type("object", merge_fields)}]
    errors = []
    for tag, value in merge_fields.items():
        if value is None or isinstance(value, (list, bool)):
            errors.append({"field": f"{prefix}merge_fields.{tag}", "message": ANY_OF})
        elif isinstance(value, dict) and fields_by_tag is not None:
            field = fields_by_tag.get(str(tag).upper())
            if field is not None and field.type != "address":
                errors.append({"field": f"{prefix}merge_fields.{tag}", "message": ANY_OF})
    return errors


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
