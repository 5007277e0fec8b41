"""The portal's forms (Flask-WTF): they read a request, check what only the request can tell
(a field is there, a box is ticked, the CSRF token) and carry messages back to the page, in
the htmx fragment as in the full page.

Rules about the data stay in the domain and are never written again here: a contact's fields
are checked by ``portal.crm.contacts.validate_contact_data`` and an import's columns by
``portal.crm.csv_import.check_columns``. A view hands the posted values to the domain and puts
its verdict on the form with :meth:`PortalForm.add_errors` (``ValidationFailed.errors`` lands on
the fields it names). The wizard's mapping rules live here because nothing below the views
checks them (``portal.sync`` takes the mapping as given).

Messages are lazy strings, translated when the page shows them, in the reader's language. The
posted names are the pages' own (``api_key``, ``audience_id``, ``map-<field>``,
``create_missing``, ``col-N``, ``reason``, ``confirm``…): fields whose name is not a Python name
get it through WTForms' ``name=``.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (BooleanField, EmailField, HiddenField, PasswordField, RadioField, SelectField, StringField,
                     TextAreaField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, StopValidation

from portal import labels
from portal.crm import contacts as crm
from portal.crm import csv_import
from portal.models import Consent, Contact
from portal.security import has_control_characters


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class PortalForm(FlaskForm):
    """A Flask-WTF form that also carries the domain's messages.

    Every field of every portal form refuses control characters (NUL, escape, DEL…; tab and
    line breaks aside), with a message on the field, as the API and the contact base do.
    """

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        """The fields' own checks, and no control character in anything posted."""
        valid = super().validate(extra_validators)
        for field in self:
            if any(isinstance(raw, str) and has_control_characters(raw) for raw in field.raw_data or ()):
                field.errors = [*field.errors, _l("Remove the invisible control characters from this field.")]
                valid = False
        return valid

    def add_errors(self, errors: Mapping[str, str] | Iterable[str]) -> None:
        """Show messages: a mapping's go on the fields it names (the form keeps the others), a list's on the form."""
        items = errors.items() if isinstance(errors, Mapping) else ((None, message) for message in errors)
        for name, message in items:
            field = self._fields.get(name) if name else None
            if field is None:
                self.form_errors.append(message)
            else:
                field.errors = [*field.errors, message]

    @property
    def messages(self) -> list[str]:
        """Every message to show, the form's own first, then the fields' in their order."""
        return [str(m) for m in (*self.form_errors, *(m for field in self for m in field.errors))]


# --------------------------------------------------------------------------- log in

class LoginForm(PortalForm):
    """E-mail and password."""

    email = EmailField(_l("E-mail"), filters=[_strip],
                       validators=[DataRequired(message=_l("Type the e-mail address you log in with."))])
    password = PasswordField(_l("Password"), validators=[DataRequired(message=_l("Type your password."))])
    remember = BooleanField(_l("Keep me logged in"))


# --------------------------------------------------------------------------- contacts

def _field(name: str, kind: type = StringField) -> Any:
    return kind(labels.CONTACT_FIELD[name])


class ContactForm(PortalForm):
    """A contact's fields, to create one or to change one (inline in the table, or on its record).

    No rule here: :func:`portal.crm.contacts.validate_contact_data` decides, and its
    ``ValidationFailed`` goes back on these fields (:meth:`PortalForm.add_errors`).
    """

    FIELDS = (*Contact.EDITABLE, "tags", "consent")

    email = _field("email", EmailField)
    first_name = _field("first_name")
    last_name = _field("last_name")
    phone = _field("phone")
    company = _field("company")
    job_title = _field("job_title")
    street = _field("street")
    postal_code = _field("postal_code")
    city = _field("city")
    country = _field("country")
    tags = _field("tags")
    consent = SelectField(labels.CONTACT_FIELD["consent"], default=Consent.UNKNOWN, validate_choice=False,
                          choices=[SelectChoice(value) for value in (Consent.UNKNOWN, Consent.OPT_IN, Consent.OPT_OUT)])
    row = HiddenField()  # posted by the table's inline form: answer with a table row

    @classmethod
    def of(cls, contact: Contact) -> ContactForm:
        """The form filled with the contact's values (what the request posted wins)."""
        values = {name: getattr(contact, name) or "" for name in Contact.EDITABLE}
        return cls(data={**values, "tags": ", ".join(contact.tag_names), "consent": contact.consent})

    def posted(self) -> dict[str, str]:
        """The contact fields the request carried; a field left out of the post is left alone."""
        return {name: self[name].data or "" for name in self.FIELDS if self[name].raw_data}

    def changes(self, contact: Contact) -> dict[str, str]:
        """What the post changes on `contact`: the posted fields, less a consent or tag list nobody touched.

        An untouched consent is never checked against the R16 lock, so a locked contact's
        other fields stay editable.
        """
        data = self.posted()
        if data.get("consent") == contact.consent:
            data.pop("consent")
        if "tags" in data and same_tags(data["tags"].split(","), contact.tag_names):
            data.pop("tags")
        return data


def same_tags(names: Sequence[str], current: Sequence[str]) -> bool:
    """Whether a posted tag list names exactly the contact's tags (case and spacing aside)."""
    return {n.lower() for n in crm.clean_tag_names(names)} == {n.lower() for n in current}


# --------------------------------------------------------------------------- CSV import

class UploadForm(PortalForm):
    """The CSV file to import."""

    file = FileField(_l("CSV file"), validators=[FileRequired(message=_l("Choose a CSV file to upload."))])


class ColumnsForm(PortalForm):
    """The column-mapping step of an import: ``col-0``, ``col-1``… each name a contact field
    ("" leaves the column out; an unknown value counts as ""). Build it with :meth:`for_import`."""

    width = 0

    @classmethod
    def for_import(cls, header: Sequence[str], shown: Sequence[str] = ()) -> ColumnsForm:
        """The form for a file with this header; `shown` is what the page shows before any post (the
        guessed fields). A post is read as it is: a column it leaves out is not imported."""
        attrs: dict[str, Any] = {"width": len(header)}
        for i in range(len(header)):
            attrs[f"col_{i}"] = SelectField(name=f"col-{i}", default=shown[i] if i < len(shown) else "",
                                            validate_choice=False, filters=[_known_field])
        return type("ImportColumnsForm", (cls,), attrs)()

    @property
    def columns(self) -> list[str]:
        """The field chosen for each column, in the file's order."""
        return [self[f"col_{i}"].data or "" for i in range(self.width)]

    def check(self) -> bool:
        """Ask the domain whether these columns can be imported; its problems become the form's messages."""
        self.add_errors(csv_import.check_columns(self.columns))
        return not self.form_errors

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        """The request is sound and the domain accepts the columns."""
        valid = super().validate(extra_validators)
        return self.check() and valid


def _known_field(value: Any) -> str:
    return value if value in csv_import.FIELDS else ""


# --------------------------------------------------------------------------- the Mailchimp wizard (R5)

API_KEY_SHAPE = re.compile(r"^[0-9a-f]{32}-[a-z]{2,4}[0-9]{1,3}$", re.IGNORECASE)
"""What a Mailchimp API key looks like: 32 hexadecimal characters, a dash, the data centre (us6)."""


def api_key_shape_error(key: str) -> str | None:
    """Why `key` cannot be a Mailchimp API key (checked before any call to Mailchimp), or None."""
    if API_KEY_SHAPE.match(key or ""):
        return None
    return str(_l("This is not a Mailchimp API key: it looks like 32 characters, a dash and a data centre such as "
                  "us6 (0123456789abcdef0123456789abcdef-us6)."))


class ApiKeyForm(PortalForm):
    """Step 1: the API key; an empty field keeps the key typed before (``keep``), when there is one.

    A value that cannot be a Mailchimp key is refused here, before any call to Mailchimp.
    """

    api_key = PasswordField(_l("API key"), filters=[_strip])
    keep = BooleanField()

    def __init__(self, *args: Any, kept_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept_key = kept_key

    def validate_api_key(self, field: PasswordField) -> None:
        """Use the kept key when the field is left empty; ask for one when there is none; refuse a
        value that does not look like a Mailchimp key."""
        if not field.data and self.keep.data and self.kept_key:
            field.data = self.kept_key
        if not field.data:
            raise StopValidation(_l("Paste your Mailchimp API key."))
        problem = api_key_shape_error(field.data)
        if problem:
            raise StopValidation(problem)


class AudienceForm(PortalForm):
    """Step 2: one of the account's audiences (``audiences`` as the wizard keeps them)."""

    audience_id = RadioField(_l("Audience"), invalid_choice_message=_l("Choose one of your audiences."))

    def __init__(self, *args: Any, audiences: Sequence[Mapping[str, Any]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audience_id.choices = [SelectChoice(str(a["id"]), str(a.get("name", ""))) for a in audiences]


class MappingForm(PortalForm):
    """Step 3: the merge field of each anaba field (``map-<field>``) and ``create_missing``.

    Build it with :meth:`for_fields` from what step 2 read of the audience; once valid,
    :attr:`mapping` holds the entries in ``audience_fields``' proposed_mapping shape. Any anaba field
    may go to an existing merge field of a fitting type (the address to an address merge field, the
    others to any other) or to the merge field created for it (``new_fields``).
    """

    create_missing = BooleanField(default=True)
    audience: dict = {}
    mapping: list[dict]

    @classmethod
    def for_fields(cls, fields: Mapping[str, Any]) -> MappingForm:
        """The form for an audience's merge fields and anaba's fields (the wizard's compact ``fields``)."""
        attrs: dict[str, Any] = {"audience": dict(fields)}
        for field, _label in fields["anaba_fields"]:
            attrs[f"map_{field}"] = SelectField(name=f"map-{field}", validate_choice=False, filters=[_tag])
        return type("WizardMappingForm", (cls,), attrs)()

    @property
    def chosen(self) -> dict[str, str]:
        """The merge field tag chosen for each anaba field ("" when it is not sent)."""
        return {field: self[f"map_{field}"].data or "" for field, _label in self.audience["anaba_fields"]}

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        """One merge field per anaba field, from the audience or created on validation, of a fitting type."""
        self.mapping = []
        if not super().validate(extra_validators):
            return False
        merge_fields = {mf["tag"]: mf for mf in self.audience["merge_fields"]}
        proposed = {p["field"]: p for p in self.audience["proposed"]}
        new_fields = new_merge_fields(self.audience)
        names = dict((f, label) for f, label in self.audience["anaba_fields"])
        seen: dict[str, str] = {}
        for field, tag in self.chosen.items():
            if not tag:
                continue
            name = names.get(field, field)
            if tag in seen:
                self.add_errors([_l("%(a)s and %(b)s both go to the merge field %(tag)s: choose one merge field per "
                                    "anaba field.", a=names.get(seen[tag], seen[tag]), b=name, tag=tag)])
                continue
            seen[tag] = field
            if tag in merge_fields:
                mf = merge_fields[tag]
                if (mf.get("type") == "address") != (field == "address"):
                    self.add_errors([_l("%(tag)s cannot receive %(field)s: choose an address merge field for the "
                                        "address, and another type for the other fields.", tag=tag, field=name)])
                    continue
                self.mapping.append({"field": field, "tag": tag, "type": mf["type"], "exists": True,
                                     "required": mf["required"], "name": mf["name"]})
            elif field in new_fields and new_fields[field]["tag"] == tag:
                if not self.create_missing.data:
                    self.add_errors([_l("The merge field %(tag)s does not exist in the audience yet: tick \"create "
                                        "the missing merge fields\" or choose another merge field for %(field)s.",
                                        tag=tag, field=name)])
                base = proposed.get(field) or {}
                self.mapping.append({**base, "field": field, "tag": tag, "type": new_fields[field]["type"],
                                     "exists": False, "required": False, "name": new_fields[field]["name"]})
            else:
                self.add_errors([_l("Choose a merge field of the list for %(field)s.", field=name)])
        return not self.form_errors


def new_merge_fields(fields: Mapping[str, Any]) -> dict[str, dict]:
    """The merge field that would be created for each anaba field (what step 2 proposed when the wizard
    kept no ``new_fields``, as before every field could get one)."""
    if fields.get("new_fields"):
        return dict(fields["new_fields"])
    return {p["field"]: {"tag": p["tag"], "type": p["type"], "name": p.get("name") or p["tag"]}
            for p in fields.get("proposed", []) if p.get("tag") and not p.get("exists")}


def _tag(value: Any) -> str:
    return (value or "").strip().upper()


# --------------------------------------------------------------------------- confirmations

class DeleteConnectorForm(PortalForm):
    """The confirmation of a connector's deletion (R9); ``next=setup`` on the "reconnect" path."""

    confirm = BooleanField(validators=[DataRequired(message=_l("Tick the box to confirm the deletion."))])
    next = HiddenField()


class EraseMemberForm(PortalForm):
    """The confirmation of a GDPR erasure of a contact's member in Mailchimp (R12): it cannot be undone."""

    confirm = BooleanField(validators=[DataRequired(message=_l("Tick the box to confirm the erasure."))])


class ValidateConnectorForm(PortalForm):
    """Support's confirmation that the first copy may start (R8)."""

    confirm = BooleanField(validators=[
        DataRequired(message=_l("Tick the box to confirm that the first copy may start."))])


class SendBackForm(PortalForm):
    """Support's reason for sending a connector back; the customer reads it (R7)."""

    reason = TextAreaField(filters=[_strip],
                           validators=[DataRequired(message=_l("Write the reason the customer will read."))])
