"""What anaba sends to Mailchimp for a contact, computed without any I/O.

Used by the dry-run preview (R7), the initial copy (R8) and replication (R10):

- :func:`build_member` — the member body (e-mail, status, merge fields) with anaba's values;
  an empty anaba value is sent as ``""`` so that anaba overwrites what Mailchimp holds (R1, R4).
- :func:`predict_errors` — the per-contact failures we can foresee without asking Mailchimp.
- :func:`member_diff` — field-by-field differences with an existing member (preview sample).
- :func:`payload_fingerprint` — a stable hash of what was sent, so an unchanged contact sends
  nothing (R10).
- :func:`tag_changes` — tags to add and remove; tags anaba does not manage are never removed.

Addresses: Mailchimp's ADDRESS value is an object ``{addr1, addr2, city, state, zip, country}``
and it refuses one without ``addr1``, ``city``, ``state`` and ``zip`` ("Please enter a complete
address"). French addresses have no state: the region, found from the postal code's département,
stands in for it (Mailchimp then writes "Paris, Île-de-France 75002", not the city twice); when
no region can be found (another country, an unusual code) the city does. An address still
incomplete after that is sent as ``""`` (no address) rather than failing the whole contact.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from portal.mailchimp.errors import message_for

__all__ = [
    "ADDRESS_KEYS", "DEFAULT_ADDRESS_PARTS", "FieldMapping", "PredictedError", "TEXT_MAX_LENGTH",
    "address_line", "build_member", "french_region", "default_mappings", "email_syntax_ok", "member_diff", "merge_value",
    "payload_fingerprint", "predict_errors", "subscriber_hash", "tag_changes",
]

TEXT_MAX_LENGTH = 255
"""Longest text merge value Mailchimp stores (commonly quoted; API-NOTES §5 and the simulator)."""

ADDRESS_KEYS = ("addr1", "addr2", "city", "state", "zip", "country")
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")

DEFAULT_ADDRESS_PARTS: dict[str, str] = {
    "addr1": "street", "addr2": "", "city": "city", "state": "", "zip": "postal_code", "country": "country",
}
"""ADDRESS part → anaba contact field ("" when anaba has no such field)."""

# Common country names as anaba users type them → ISO 3166 alpha-2 (Mailchimp wants codes
# and silently falls back to US otherwise).
_COUNTRY_CODES = {
    "france": "FR", "belgique": "BE", "belgium": "BE", "suisse": "CH", "switzerland": "CH",
    "luxembourg": "LU", "monaco": "MC", "canada": "CA", "allemagne": "DE", "germany": "DE",
    "espagne": "ES", "spain": "ES", "italie": "IT", "italy": "IT", "portugal": "PT",
    "royaume-uni": "GB", "royaume uni": "GB", "united kingdom": "GB", "uk": "GB",
    "pays-bas": "NL", "netherlands": "NL", "etats-unis": "US", "états-unis": "US",
    "united states": "US", "usa": "US", "maroc": "MA", "morocco": "MA", "tunisie": "TN",
    "algérie": "DZ", "algerie": "DZ", "sénégal": "SN", "senegal": "SN", "irlande": "IE",
    "autriche": "AT", "pologne": "PL", "suède": "SE", "danemark": "DK", "norvège": "NO",
    "grèce": "GR", "réunion": "RE", "la réunion": "RE", "guadeloupe": "GP", "martinique": "MQ",
    "guyane": "GF", "mayotte": "YT", "nouvelle-calédonie": "NC", "polynésie française": "PF",
}

# The region of each French département (2016 regions), by the first two digits of the postal
# code; overseas départements by their first three.
_REGIONS = {
    "Auvergne-Rhône-Alpes": "01 03 07 15 26 38 42 43 63 69 73 74",
    "Bourgogne-Franche-Comté": "21 25 39 58 70 71 89 90",
    "Bretagne": "22 29 35 56",
    "Centre-Val de Loire": "18 28 36 37 41 45",
    "Corse": "20",
    "Grand Est": "08 10 51 52 54 55 57 67 68 88",
    "Hauts-de-France": "02 59 60 62 80",
    "Île-de-France": "75 77 78 91 92 93 94 95",
    "Normandie": "14 27 50 61 76",
    "Nouvelle-Aquitaine": "16 17 19 23 24 33 40 47 64 79 86 87",
    "Occitanie": "09 11 12 30 31 32 34 46 48 65 66 81 82",
    "Pays de la Loire": "44 49 53 72 85",
    "Provence-Alpes-Côte d'Azur": "04 05 06 13 83 84",
    "Guadeloupe": "971", "Martinique": "972", "Guyane": "973", "La Réunion": "974", "Mayotte": "976",
}
_REGION_OF = {code: region for region, codes in _REGIONS.items() for code in codes.split()}
_FRENCH = ("FR", "GP", "MQ", "GF", "RE", "YT")

_EMAIL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


class PredictedError(NamedTuple):
    """A failure foreseen for one contact: ``(kind, field, message)``."""

    kind: str
    field: str | None
    message: str


@dataclass(frozen=True)
class FieldMapping:
    """One anaba field sent to one merge field.

    ``source`` is the anaba contact field (for an ``address`` mapping, a label: the parts come
    from ``address_parts``); ``tag`` the merge tag; ``type`` the merge type; ``max_length`` the
    longest accepted value (default :data:`TEXT_MAX_LENGTH` for text-like types); ``name`` the
    label used if the merge field has to be created.
    """

    source: str
    tag: str
    type: str = "text"
    max_length: int | None = None
    name: str = ""
    address_parts: Mapping[str, str] | None = None
    default_country: str = "FR"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tag", self.tag.strip().upper())
        if self.type == "address" and self.address_parts is None:
            object.__setattr__(self, "address_parts", dict(DEFAULT_ADDRESS_PARTS))

    @property
    def limit(self) -> int | None:
        """The maximum length checked by :func:`predict_errors` (None: no text limit)."""
        if self.max_length:
            return self.max_length
        return TEXT_MAX_LENGTH if self.type in ("text", "phone", "url", "imageurl", "zip") else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the connector's stored mapping."""
        data = asdict(self)
        data["address_parts"] = dict(self.address_parts) if self.address_parts else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldMapping:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def default_mappings() -> list[FieldMapping]:
    """The mapping proposed by the wizard: FNAME, LNAME, PHONE, ADDRESS, COMPANY."""
    return [
        FieldMapping("first_name", "FNAME", "text", name="First Name"),
        FieldMapping("last_name", "LNAME", "text", name="Last Name"),
        FieldMapping("phone", "PHONE", "phone", name="Phone Number"),
        FieldMapping("address", "ADDRESS", "address", name="Address"),
        FieldMapping("company", "COMPANY", "text", name="Company"),
    ]


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address (API-NOTES §1.1)."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def email_syntax_ok(email: str | None) -> bool:
    """True when ``email`` passes the syntax check Mailchimp applies ("Please provide a valid…")."""
    if not email:
        return False
    return _email_syntax_ok(email)


# The copy judges each contact twice (choosing its chunk, then pushing it) a few hundred contacts apart.
@functools.lru_cache(maxsize=8192)
def _email_syntax_ok(email: str) -> bool:
    email = email.strip()
    local = email.split("@")[0]
    return bool(_EMAIL_RE.match(email)) and ".." not in email and not local.startswith(".") \
        and not local.endswith(".")


def _get(contact: Mapping[str, Any], key: str) -> Any:
    if not key:
        return None
    if isinstance(contact, Mapping):
        return contact.get(key)
    return getattr(contact, key, None)


def _getter(contact: Mapping[str, Any]) -> Callable[[str], Any]:
    """:func:`_get` bound to one contact: whether it is a mapping is asked once, not per field."""
    if isinstance(contact, Mapping):
        get = contact.get
        return lambda key: get(key) if key else None
    return lambda key: getattr(contact, key, None) if key else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _country(value: Any, default: str) -> str:
    text = _text(value)
    if not text:
        return default
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return _COUNTRY_CODES.get(text.lower(), text)


def french_region(postal_code: str, country: str = "FR") -> str:
    """The French region of a postal code ("75002" → "Île-de-France"); "" when there is none."""
    code = _text(postal_code).replace(" ", "")
    if country.upper() not in _FRENCH or len(code) != 5 or not code.isdigit():
        return ""
    return _REGION_OF.get(code[:3]) or _REGION_OF.get(code[:2], "")


def _address(get: Callable[[str], Any], mapping: FieldMapping) -> dict[str, str] | str:
    parts = mapping.address_parts or DEFAULT_ADDRESS_PARTS
    raw = {key: _text(get(parts.get(key, ""))) for key in ADDRESS_KEYS}
    if not any(raw[k] for k in ("addr1", "addr2", "city", "state", "zip")):
        return ""
    raw["country"] = _country(raw["country"], mapping.default_country)
    if not raw["state"]:
        raw["state"] = french_region(raw["zip"], raw["country"]) or raw["city"]
    if not all(raw[k] for k in ADDRESS_REQUIRED):
        return ""
    return raw


def address_line(value: Mapping[str, Any] | str) -> str:
    """An ADDRESS value on one line, each part once: "12 rue de la Paix, 75002 Paris, Île-de-France, FR"."""
    if not isinstance(value, Mapping):
        return _text(value)
    addr1, addr2, city, state, zip_code, country = (_text(value.get(k)) for k in ADDRESS_KEYS)
    parts = [addr1, addr2, " ".join(p for p in (zip_code, city) if p)]
    if state and state.casefold() != city.casefold():
        parts.append(state)
    parts.append(country)
    return ", ".join(p for p in parts if p)


def merge_value(contact: Mapping[str, Any], mapping: FieldMapping) -> Any:
    """The merge value for one mapping: ``""`` when anaba's value is empty (so it overwrites)."""
    return _merge_value(_getter(contact), mapping)


def _merge_value(get: Callable[[str], Any], mapping: FieldMapping) -> Any:
    if mapping.type == "address":
        return _address(get, mapping)
    value = get(mapping.source)
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if mapping.type == "number":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, Decimal):
            return float(value)
        return _text(value)
    if mapping.type == "birthday" and isinstance(value, (_dt.date, _dt.datetime)):
        return value.strftime("%m/%d")
    if mapping.type == "date" and isinstance(value, (_dt.date, _dt.datetime)):
        return value.strftime("%Y-%m-%d")
    # Phone numbers go as text, as typed: reformatting would change what the customer sees.
    return _text(value)


def build_member(
    contact: Mapping[str, Any],
    mappings: Iterable[FieldMapping],
    *,
    status: str = "subscribed",
    status_key: str = "status",
    email_key: str = "email",
) -> dict[str, Any]:
    """The member body for ``contact``: ``{"email_address", <status_key>, "merge_fields"}``.

    ``status_key`` is ``"status"`` (batch subscribe, PATCH) or ``"status_if_new"`` (PUT, where
    ``status`` would also re-subscribe an existing member). ``contact`` is a mapping (or any
    object with attributes) of anaba fields.
    """
    if status_key not in ("status", "status_if_new"):
        raise ValueError("status_key must be 'status' or 'status_if_new'")
    get = _getter(contact)
    merge_fields = {m.tag: _merge_value(get, m) for m in mappings}
    return {
        "email_address": _text(get(email_key)),
        status_key: status,
        "merge_fields": merge_fields,
    }


def _merge_fields_by_tag(merge_fields: Any) -> dict[str, Mapping[str, Any]]:
    if isinstance(merge_fields, Mapping):
        return {str(k).upper(): v for k, v in merge_fields.items()}
    return {str(f.get("tag", "")).upper(): f for f in (merge_fields or [])}


def predict_errors(
    contact: Mapping[str, Any],
    mappings: Sequence[FieldMapping],
    merge_fields: Any,
    *,
    email_key: str = "email",
) -> list[PredictedError]:
    """Failures foreseeable for ``contact`` without writing anything (dry-run preview, R7).

    ``merge_fields`` is the audience's merge fields (the list from ``get_merge_fields`` or a
    dict by tag). Checks: e-mail syntax (a missing e-mail is a skip reason, not an error),
    values longer than their merge field accepts, numbers and choices that do not fit, and
    required merge fields that anaba leaves empty or does not map at all. Mailchimp may still
    refuse an address it finds fake: that cannot be foreseen.
    """
    found: list[PredictedError] = []

    def add(kind: str, tag: str | None) -> None:
        found.append(PredictedError(kind, tag, message_for(kind, field=tag)))

    email = _text(_get(contact, email_key))
    if email and not email_syntax_ok(email):
        add("invalid_email", None)

    by_tag = _merge_fields_by_tag(merge_fields)
    mapped: dict[str, Any] = {}
    get = _getter(contact)
    for mapping in mappings:
        value = _merge_value(get, mapping)
        mapped[mapping.tag] = value
        field_def = by_tag.get(mapping.tag) or {}
        mtype = field_def.get("type") or mapping.type
        if value == "":
            continue
        if isinstance(value, str) and mapping.limit and len(value) > mapping.limit:
            add("value_too_long", mapping.tag)
            continue
        if mtype == "number" and not _is_number(value):
            add("merge_field_invalid", mapping.tag)
        elif mtype in ("radio", "dropdown"):
            choices = (field_def.get("options") or {}).get("choices") or []
            if choices and str(value) not in choices:
                add("merge_field_invalid", mapping.tag)

    for tag, field_def in by_tag.items():
        if tag == "EMAIL" or not field_def.get("required"):
            continue
        if mapped.get(tag, "") == "" and not _text(field_def.get("default_value")):
            add("merge_field_required", tag)
    return found


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value).replace(",", "."))
    except ValueError:
        return False
    return True


def _norm(value: Any) -> Any:
    """Comparable form of a merge value as sent or as read back from Mailchimp."""
    if isinstance(value, Mapping):
        # The state is never anaba's own value (it stands in for what French addresses lack):
        # comparing it would report every member written before the region replaced the city.
        parts = {k: _text(value.get(k)) for k in ADDRESS_KEYS if k != "state"}
        if not any(parts[k] for k in ("addr1", "addr2", "city", "zip")):
            return ""
        parts["country"] = parts["country"].upper()
        return tuple(sorted(parts.items()))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _text(value)


def member_diff(current_member: Mapping[str, Any] | None, payload: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """What ``payload`` would change on ``current_member``: ``{field: (before, after)}``.

    Fields are ``email_address``, ``status`` (only when the payload sets ``status``) and each
    merge tag of the payload. An absent member (``None``) shows every non-empty value as new.
    E-mail case is ignored (Mailchimp identifies members case-insensitively).
    """
    current = dict(current_member or {})
    diff: dict[str, tuple[Any, Any]] = {}
    before_email = current.get("email_address") or ""
    after_email = payload.get("email_address") or ""
    if _text(before_email).lower() != _text(after_email).lower():
        diff["email_address"] = (before_email or None, after_email)
    if "status" in payload and (current.get("status") or None) != payload["status"]:
        diff["status"] = (current.get("status") or None, payload["status"])
    before_fields = current.get("merge_fields") or {}
    for tag, after in (payload.get("merge_fields") or {}).items():
        before = before_fields.get(tag, "")
        if _norm(before) != _norm(after):
            diff[tag] = (before, after)
    return diff


def _clean_tags(tags: Iterable[str] | None) -> list[str]:
    return sorted({t.strip() for t in (tags or ()) if t and t.strip()})


def payload_fingerprint(payload: Mapping[str, Any], tags: Iterable[str] | None = ()) -> str:
    """A stable SHA-256 (64 hex chars) of a member body and its tags (R10).

    Independent of dict key order and tag order, and of whether the status travels as
    ``status`` or ``status_if_new``, so the same contact gives the same fingerprint whichever
    endpoint carried it.
    """
    body = {k: v for k, v in payload.items() if k not in ("status", "status_if_new")}
    body["status"] = payload.get("status") or payload.get("status_if_new")
    canonical = _FINGERPRINT_JSON.encode({"member": body, "tags": _clean_tags(tags) if tags else []})
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# json.dumps with these options would build a new encoder for every contact.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def tag_changes(
    current_tags: Iterable[str] | None,
    wanted_tags: Iterable[str] | None,
    managed_tags: Iterable[str] | None,
) -> tuple[list[str], list[str]]:
    """Tags to add and to remove so the member carries ``wanted_tags`` (R3, issue 4).

    Only tags in ``managed_tags`` (the tags anaba knows) are ever removed: tags set in
    Mailchimp by other means stay. Names compare case-insensitively, as Mailchimp's do.
    Returns two sorted lists.
    """
    current_spelling = {t.casefold(): t for t in _clean_tags(current_tags)}
    wanted = {t.casefold(): t for t in _clean_tags(wanted_tags)}
    add = sorted(wanted[k] for k in wanted if k not in current_spelling)
    if not current_spelling:
        return add, []
    managed = {t.casefold() for t in _clean_tags(managed_tags)}
    remove = sorted(current_spelling[k] for k in current_spelling if k in managed and k not in wanted)
    return add, remove
