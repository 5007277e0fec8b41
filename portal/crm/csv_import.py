"""CSV import of contacts: read the file, guess the columns, preview, then import in chunks.

The steps, as the screens follow them:

1. `analyze(content)` when the file is uploaded: decodes it (a BOM says the encoding; without
   one, charset-normalizer picks among the encodings French files come in, with a notice when
   it is not UTF-8), finds the delimiter (`csv.Sniffer` among `,` `;` tab), reads the header and
   counts the rows. A broken file raises `BrokenFile` with a message people understand (empty,
   a spreadsheet, a PDF or an image, JSON or a web page, binary, undecodable) and nothing is stored.
2. `guess_columns(header)` proposes a field for each column from French and English headers.
3. `preview(...)` says, for the first rows, what the import would do with each one.
4. `run_import(import_id)` (the `import_csv` background job) imports the rows, 1,000 at a time:
   each chunk's contacts, tags, consent events and the import's progress are committed
   together, so a restarted job resumes after the last committed chunk without duplicates.

The preview and the import share one decision, :func:`decide_rows`, so the screen never
promises what the import does not do. Matching rule (shown on the mapping screen): a row whose
e-mail belongs to exactly one live contact of the workspace updates that contact. Only the
mapped, non-empty cells change it (an empty cell never erases a value) and tags are added,
never removed. When several contacts share that e-mail the row is rejected, and so is a row
that would opt back in a contact whose consent Mailchimp locked (R16). A row without an e-mail
always creates a contact, and a later row with the same e-mail as an earlier row of the file
updates the contact that earlier row created.

The rejected rows download as CSV with every cell a spreadsheet would run as a formula
(`=`, `+`, `-`, `@`, tab, carriage return first) prefixed with `'`; an import takes that
prefix off again, so a fixed rejects file imports its values as they were.
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import charset_normalizer
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import insert, select
from sqlalchemy.orm import defer

from portal import background, labels
from portal.crm.contacts import clean_tag_names, insert_contacts, record_consent, validate_contact_data, workspace_tags
from portal.crm.errors import ValidationFailed
from portal.crm.spreadsheet_cells import protect_cell, unprotect_cell
from portal.crm.events import announce
from portal.extensions import db
from portal.models import (Channel, Consent, ConsentEvent, Contact, ContactChange, CsvImport, RunStatus,
                           Tag, User, utcnow)

FIELDS = (
    "email", "first_name", "last_name", "phone", "company", "job_title",
    "street", "postal_code", "city", "country", "tags", "consent",
)
IDENTITY_FIELDS = ("email", "first_name", "last_name", "company")
CHUNK_SIZE = 1000
BIG_IMPORT = 5000  # rows after which the planner statistics are refreshed (see db_setup)
MAX_STORED_REJECTS = 100_000
PREVIEW_ROWS = 10
PREVIEW_BYTES = 256 * 1024  # the preview's rows are near the top; never decode a 60 MB file for them
DELIMITERS = ",;\t"
SNIFF_CHARS = 8 * 1024  # csv.Sniffer is quadratic on lines full of quotes: 8 KB ≈ 0.2 s at worst, 64 KB 13 s
# Without a BOM, the encodings French customers' files come in: Excel's "CSV UTF-8", Windows
# Excel's plain CSV (Windows-1252), ISO-8859-15, old Mac and DOS exports. Left to choose among
# every code page, charset-normalizer reads a short French file as Baltic, Czech or Urdu text.
ENCODINGS = ("utf_8", "cp1252", "iso8859_15", "mac_roman", "cp850")
# A BOM names the encoding (UTF-32's little-endian BOM starts like UTF-16's: it is looked at first).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_ENCODING_NAMES = {
    "utf-8": "UTF-8", "utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-32": "UTF-32", "cp1252": "Windows-1252",
    "iso8859-15": "ISO-8859-15", "iso8859-1": "ISO-8859-1", "mac-roman": "Mac Roman", "cp850": "DOS (CP850)",
}

# Headers people actually write, folded (lower case, no accents, no spaces or punctuation).
_ALIASES = {
    "email": ("email", "e-mail", "mail", "courriel", "adresse email", "adresse e-mail", "adresse mail",
              "adresse courriel", "adresse electronique", "email address", "e-mail address", "mel", "emailaddress"),
    "first_name": ("prenom", "first name", "firstname", "given name", "forename", "prenom du contact"),
    "last_name": ("nom", "nom de famille", "last name", "lastname", "surname", "family name", "name"),
    "phone": ("telephone", "tel", "phone", "phone number", "mobile", "portable", "numero de telephone",
              "telephone mobile", "telephone portable", "gsm"),
    "company": ("societe", "entreprise", "company", "organisation", "organization", "raison sociale",
                "structure", "company name", "nom de la societe", "nom de l'entreprise", "employeur"),
    "job_title": ("fonction", "poste", "job title", "title", "titre", "job", "position", "metier", "intitule du poste"),
    "street": ("adresse", "rue", "street", "address", "adresse postale", "street address", "voie", "address line 1"),
    "postal_code": ("code postal", "cp", "postal code", "zip", "zip code", "postcode", "codepostal"),
    "city": ("ville", "city", "commune", "town", "localite"),
    "country": ("pays", "country"),
    "tags": ("tags", "tag", "etiquettes", "etiquette", "labels", "label", "groupes", "segments", "mots cles"),
    "consent": ("consentement", "consent", "opt-in", "optin", "opt in", "rgpd", "gdpr", "consentement rgpd",
                "accepte les e-mails", "newsletter consent"),
}

_CONSENT_WORDS = {
    "opt_in": ("opt_in", "optin", "opt-in", "opt in", "oui", "yes", "y", "o", "1", "true", "vrai", "x",
               "inscrit", "inscrite", "abonne", "abonnee", "subscribed", "accepte", "consent"),
    "opt_out": ("opt_out", "optout", "opt-out", "opt out", "non", "no", "n", "0", "false", "faux", "desinscrit",
                "desinscrite", "desabonne", "desabonnee", "unsubscribed", "refuse", "refus"),
    "unknown": ("unknown", "inconnu", "inconnue", "?", "nsp", "-"),
}

# (signature, what it is) — files people mistake for CSV.
_MAGIC = (
    (b"PK\x03\x04", "zip"),
    (b"\xd0\xcf\x11\xe0", "xls"),
    (b"%PDF", "pdf"),
    (b"\x89PNG", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF8", "image"),
    (b"\x1f\x8b", "gzip"),
)


class BrokenFile(Exception):
    """The file cannot be imported at all; `message` tells the user why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RowRejected(Exception):
    """One row cannot be imported; `reason` says why in the user's language."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def field_labels() -> dict[str, str]:
    """The importable fields with their names in the current language, in display order."""
    return {name: labels.field(name) for name in FIELDS}


def _fold_header(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "", plain)


_ALIAS_INDEX = {_fold_header(alias): name for name, aliases in _ALIASES.items() for alias in aliases}
_CONSENT_INDEX = {_fold_header(w) or w: name for name, words in _CONSENT_WORDS.items() for w in words}


# --------------------------------------------------------------------------- reading the file

@dataclass
class Analysis:
    """What `analyze` learnt about an uploaded file."""

    encoding: str
    delimiter: str
    header: list[str]
    total: int
    notice: str = ""
    samples: list[list[str]] = field(default_factory=list)


def _undecodable() -> BrokenFile:
    return BrokenFile(_("The characters of this file cannot be read. Save it again as “CSV UTF-8” and upload "
                        "it again."))


def _not_text() -> BrokenFile:
    return BrokenFile(_("This file is not text (it contains binary data). "
                        "Export your contacts as CSV and upload that file."))


def _detect_encoding(content: bytes) -> str:
    """The encoding of a file without a BOM, as charset-normalizer reads it; BrokenFile when none fits."""
    match = charset_normalizer.from_bytes(content, cp_isolation=list(ENCODINGS)).best()
    if match is None:
        raise _not_text() if b"\x00" in content else _undecodable()
    return "utf_8" if match.encoding == "ascii" else match.encoding


def encoding_name(encoding: str) -> str:
    """An encoding as people know it ("Windows-1252" rather than cp1252)."""
    return _ENCODING_NAMES.get(codecs.lookup(encoding).name, encoding)


def decode(content: bytes) -> tuple[str, str, str]:
    """The file's text, the encoding used and a notice for the user (empty when UTF-8).

    A BOM decides the encoding (and a file that breaks its own BOM is refused); otherwise
    charset-normalizer chooses among `ENCODINGS`. Raises BrokenFile for an empty, binary or
    undecodable file, and for the files people upload by mistake (a spreadsheet, a PDF, an
    image, an archive, JSON, a web page).
    """
    if not content or not content.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise BrokenFile(_("The file is empty."))
    for signature, kind in _MAGIC:
        if content.startswith(signature):
            if kind in ("zip", "xls"):
                raise BrokenFile(_("This looks like a spreadsheet (Excel or similar), not a CSV file. "
                                   "Open it in your spreadsheet and save it as “CSV UTF-8”, then upload that "
                                   "file."))
            raise BrokenFile(_("This is not a CSV file (it looks like a PDF, an image or an archive). "
                               "Export your contacts as CSV and upload that file."))
    encoding = next((name for bom, name in _BOMS if content.startswith(bom)), None)
    declared = encoding is not None
    if encoding is None:
        encoding = _detect_encoding(content)
    try:
        text = content.decode(encoding)
    except UnicodeDecodeError:
        if declared:
            raise BrokenFile(_("The file says it is Unicode text but some of its bytes are not. "
                               "Save it again as “CSV UTF-8” and upload it again.")) from None
        raise _undecodable() from None
    head = text[:65536]
    controls = sum(1 for c in head if (ord(c) < 32 and c not in "\t\r\n\f") or c == "\ufffd")
    if "\x00" in head or controls > max(2, len(head) // 100):
        raise _not_text()
    start = head.lstrip().lstrip("\ufeff")[:1]
    if start == "<":
        raise BrokenFile(_("This file is a web page or XML document, not a CSV file."))
    if start in ("{", "["):
        raise BrokenFile(_("This file is JSON, not a CSV file."))
    notice = ""
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig", "utf-16", "utf-32"):
        notice = _("This file is not in UTF-8: it was read as %(encoding)s text. Check that accented letters "
                   "look right in the preview before importing.", encoding=encoding_name(encoding))
    return text, encoding, notice


def sniff_delimiter(text: str) -> str:
    """`,`, `;` or a tab, as `csv.Sniffer` reads the first lines.

    When the sniffer finds nothing (a one-column file has nothing to split on) or gives up on
    irregular lines, the delimiter the header line uses most, else a comma.
    """
    sample = text[:SNIFF_CHARS]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rfind("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = sample.lstrip("\ufeff").splitlines()[0] if sample.strip() else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(DELIMITERS, key=counts.__getitem__)
        return best if counts[best] else ","


def iter_records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Every non-blank record with the file line it starts on (1-based), the header included.

    Raises BrokenFile when a record cannot be parsed at all.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BrokenFile(
                _("Line %(line)d cannot be read as CSV (%(error)s).", line=start, error=str(exc))) from None
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def analyze(content: bytes) -> Analysis:
    """Decode the upload, find its delimiter and header, count its rows; BrokenFile when unusable."""
    text, encoding, notice = decode(content)
    delimiter = sniff_delimiter(text)
    records = iter_records(text, delimiter)
    first = next(records, None)
    if first is None:
        raise BrokenFile(_("The file is empty."))
    header = [h.strip() or _("Column %(n)d", n=i + 1) for i, h in enumerate(first[1])]
    header[0] = header[0].lstrip("\ufeff")
    samples: list[list[str]] = []
    total = 0
    for _line, row in records:
        total += 1
        if len(samples) < 3:
            samples.append(row)
    if total == 0:
        raise BrokenFile(_("The file only has a header line: there are no contacts to import."))
    return Analysis(encoding=encoding, delimiter=delimiter, header=header, total=total, notice=notice,
                    samples=samples)


def upload(workspace_id: int, user_id: int | None, filename: str, content: bytes) -> CsvImport:
    """Read an uploaded file and keep it, waiting for its column mapping; BrokenFile (nothing
    stored) when it cannot be imported. Commits."""
    analysis = analyze(content)
    imp = CsvImport(
        workspace_id=workspace_id, user_id=user_id, filename=filename[:255], content=content,
        encoding=analysis.encoding, delimiter=analysis.delimiter, total=analysis.total, message=analysis.notice,
        status=RunStatus.UPLOADED,
        mapping={"header": analysis.header, "columns": guess_columns(analysis.header), "samples": analysis.samples},
    )
    db.session.add(imp)
    db.session.commit()
    return imp


def get_import(workspace_id: int, import_id: int, *, light: bool = False) -> CsvImport | None:
    """The workspace's import (None for another workspace's id).

    `light` leaves the file and the rejects unloaded (the progress partial is polled every
    second and needs neither); otherwise the file loads on first access only.
    """
    query = select(CsvImport).where(CsvImport.id == import_id, CsvImport.workspace_id == workspace_id)
    deferred = (CsvImport.content, CsvImport.rejects) if light else (CsvImport.content,)
    return db.session.scalar(query.options(*(defer(column) for column in deferred)))


def recent_imports(workspace_id: int, limit: int = 10) -> list[CsvImport]:
    """The workspace's latest imports, newest first."""
    return list(db.session.scalars(
        select(CsvImport).where(CsvImport.workspace_id == workspace_id)
        .options(defer(CsvImport.content), defer(CsvImport.rejects))
        .order_by(CsvImport.id.desc()).limit(limit)))


def data_records(imp: CsvImport, head_bytes: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """The stored file's rows after the header, with their line numbers.

    With `head_bytes`, only that much of the file is read (enough for a preview; the last row
    read may be cut short).
    """
    if head_bytes is not None and len(imp.content) > head_bytes:
        text = imp.content[:head_bytes].decode(imp.encoding, errors="ignore")
    else:
        text = imp.content.decode(imp.encoding)
    records = iter_records(text, imp.delimiter)
    next(records, None)
    yield from records


# --------------------------------------------------------------------------- mapping

def guess_columns(header: Sequence[str]) -> list[str]:
    """The field each column probably holds ("" when unsure); each field is used at most once."""
    used: set[str] = set()
    guesses = []
    for name in header:
        guess = _ALIAS_INDEX.get(_fold_header(name), "")
        if guess in used:
            guess = ""
        if guess:
            used.add(guess)
        guesses.append(guess)
    return guesses


def check_columns(columns: Sequence[str]) -> list[str]:
    """Problems with a column mapping (empty list when it can be imported)."""
    problems = []
    chosen = [c for c in columns if c]
    for name in sorted({c for c in chosen if chosen.count(c) > 1}):
        problems.append(_("“%(field)s” is chosen for several columns.", field=field_labels().get(name, name)))
    if not any(c in IDENTITY_FIELDS for c in chosen):
        problems.append(_("Choose at least one column for the e-mail, the first name, the last name or the company."))
    return problems


# --------------------------------------------------------------------------- one row

def parse_consent(value: str) -> str:
    """"opt_in" / "opt_out" / "unknown" from what people write ("oui", "non", "opt-in"…)."""
    key = _fold_header(value) or value.strip()
    if key in _CONSENT_INDEX:
        return _CONSENT_INDEX[key]
    raise RowRejected(_("Consent “%(value)s” is not understood (use opt_in, opt_out or unknown; "
                        "oui and non work too).", value=value))


def split_tags(value: str) -> list[str]:
    """Tag names from one cell: separated by commas, semicolons or vertical bars."""
    return [t.strip() for t in re.split(r"[,;|]", value) if t.strip()]


def row_to_clean(row: Sequence[str], columns: Sequence[str]) -> dict:
    """The validated contact fields of one row (only mapped, non-empty cells); RowRejected otherwise."""
    extra = row[len(columns):]
    if any(cell.strip() for cell in extra):
        raise RowRejected(_("This line has %(n)d values but the header has %(m)d columns.", n=len(row), m=len(columns)))
    data: dict = {}
    for value, name in zip(row, columns):
        value = unprotect_cell(value.strip())
        if not name or not value:
            continue
        if name == "tags":
            data["tags"] = split_tags(value)
        elif name == "consent":
            data["consent"] = parse_consent(value)
        else:
            data[name] = value
    try:
        return validate_contact_data(data)
    except ValidationFailed as exc:
        raise RowRejected("; ".join(f"{labels.field(k)}: {v}" for k, v in exc.errors.items())) from None


def _email_key(clean: Mapping) -> str | None:
    return clean["email"].lower() if clean.get("email") else None


def _matches(workspace_id: int, emails: set[str]) -> dict[str, list[int]]:
    """Live contacts of the workspace by normalised e-mail (one query)."""
    found: dict[str, list[int]] = defaultdict(list)
    if emails:
        rows = db.session.execute(
            select(Contact.email_normalized, Contact.id)
            .where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None),
                   Contact.email_normalized.in_(sorted(emails)))
            .order_by(Contact.id)
        )
        for email, contact_id in rows:
            found[email].append(contact_id)
    return found


def shared_email_reason() -> str:
    """The rejection reason for an e-mail used by several contacts."""
    return _("several contacts share this e-mail")


# --------------------------------------------------------------------------- what happens to each row

NEW, UPDATE, REJECT = "new", "update", "reject"


@dataclass
class RowDecision:
    """What the import does with one row: `action` is new, update or reject.

    An update names the live `contact` it changes, or (`contact` None) updates what an earlier
    row of the same rows creates; `email_key` ties the two together.
    """

    line: int
    values: list[str]
    action: str
    clean: dict | None = None
    reason: str = ""
    contact: Contact | None = None
    email_key: str | None = None

    @property
    def is_new(self) -> bool:
        """The row creates a contact."""
        return self.action == NEW

    @property
    def is_update(self) -> bool:
        """The row changes an existing contact, or the one an earlier row creates."""
        return self.action == UPDATE

    @property
    def is_rejected(self) -> bool:
        """The row is not imported; `reason` says why."""
        return self.action == REJECT


def decide_rows(workspace_id: int, records: Sequence[tuple[int, list[str]]],
                columns: Sequence[str]) -> list[RowDecision]:
    """What importing these rows does to each, in their order: the one decision the preview shows
    and the import applies. Reads the workspace's contacts, writes nothing.

    A row is rejected when a cell is wrong, when its e-mail is shared by several live contacts,
    or when it would opt in a contact whose consent Mailchimp locked (R16). A row whose e-mail
    belongs to one live contact updates it; one whose e-mail an earlier row creates updates that
    one; any other row creates a contact.
    """
    decisions: list[RowDecision] = []
    for line, row in records:
        try:
            clean = row_to_clean(row, columns)
        except RowRejected as exc:
            decisions.append(RowDecision(line, row, REJECT, reason=exc.reason))
        else:
            decisions.append(RowDecision(line, row, NEW, clean=clean, email_key=_email_key(clean)))
    found = _matches(workspace_id, {d.email_key for d in decisions if d.email_key})
    single = [ids[0] for ids in found.values() if len(ids) == 1]
    contacts = {c.id: c for c in db.session.scalars(select(Contact).where(Contact.id.in_(single)))} if single else {}
    created: set[str] = set()
    for decision in decisions:
        key = decision.email_key
        if decision.is_rejected or key is None:
            continue
        ids = found.get(key, [])
        if len(ids) > 1:
            decision.action, decision.reason = REJECT, shared_email_reason()
        elif ids:
            contact = contacts[ids[0]]
            if decision.clean.get("consent") == Consent.OPT_IN and contact.consent_locked:
                decision.action, decision.reason = REJECT, _locked_reason()
            else:
                decision.action, decision.contact = UPDATE, contact
        elif key in created:
            decision.action = UPDATE
        else:
            created.add(key)
    return decisions


def preview(imp: CsvImport, columns: Sequence[str], limit: int = PREVIEW_ROWS) -> list[RowDecision]:
    """The first rows of the file with what the import would do with each (writes nothing)."""
    rows = list(itertools.islice(data_records(imp, head_bytes=PREVIEW_BYTES), limit))
    return decide_rows(imp.workspace_id, rows, columns)


def _locked_reason() -> str:
    return _("consent is locked: this contact unsubscribed through Mailchimp and has to subscribe again there")


# --------------------------------------------------------------------------- the job

def start(imp: CsvImport, columns: list[str]) -> bool:
    """Save the mapping and mark the import queued; False when it was already started. Commits."""
    claimed = db.session.execute(
        CsvImport.__table__.update()
        .where(CsvImport.id == imp.id, CsvImport.status == RunStatus.UPLOADED)
        .values(status=RunStatus.QUEUED, mapping={**(imp.mapping or {}), "columns": columns})
    ).rowcount
    db.session.commit()
    db.session.refresh(imp)
    return bool(claimed)


def resume(imp: CsvImport) -> bool:
    """Queue a failed import again; it goes on after the last committed chunk. Commits."""
    requeued = background.requeue(CsvImport, imp.id, (RunStatus.FAILED,))
    db.session.refresh(imp)
    return requeued


def needing_a_job() -> list[CsvImport]:
    """Imports a worker should have: their worker died (stale heartbeat) or their job was lost."""
    return background.needing_a_job(CsvImport)


def is_stalled(imp: CsvImport) -> bool:
    """True when the import's worker stopped sending heartbeats: it resumes on its own within a minute."""
    if imp.status != RunStatus.RUNNING or imp.heartbeat_at is None:
        return False
    return (utcnow() - imp.heartbeat_at).total_seconds() > background.lease_seconds()


def get(import_id: int) -> CsvImport | None:
    """An import by id (for the background jobs)."""
    return db.session.get(CsvImport, import_id)


def run_import(import_id: int, *, should_yield: Callable[[], bool] | None = None) -> background.Outcome | None:
    """Import an uploaded file in chunks (the `import_csv` job); resumes after the last committed chunk.

    Each chunk's contacts, tags, consent events and the import's progress commit together,
    with the claim re-checked in that transaction (:func:`portal.background.checkpoint`).
    After a chunk, when `should_yield` says live work waits, the import steps aside
    (:class:`~portal.background.YieldRun`) and comes back from its cursor.
    """
    imp = db.session.get(CsvImport, import_id, populate_existing=True)  # the session may hold a stale copy
    if imp is None:
        return None
    user = db.session.get(User, imp.user_id) if imp.user_id else None
    actor = user.email if user else f"csv-import-{imp.id}"
    with force_locale((user.locale if user else None) or "fr"):
        outcome = background.execute(imp, lambda run, token: _import_rows(run, token, actor, should_yield))
    if outcome == background.Outcome.FINISHED:
        imp = db.session.get(CsvImport, import_id)
        if imp.imported >= BIG_IMPORT:
            from portal.db_setup import refresh_statistics

            refresh_statistics(db.engine)
    return outcome


def _import_rows(imp: CsvImport, token: str, actor: str, should_yield: Callable[[], bool] | None) -> None:
    columns = list((imp.mapping or {}).get("columns") or [])
    records = itertools.islice(data_records(imp), imp.done, None)
    while True:
        chunk = list(itertools.islice(records, CHUNK_SIZE))
        if not chunk:
            return
        _import_chunk(imp, token, chunk, columns, actor)
        if should_yield is not None and imp.done < imp.total and should_yield():
            raise background.YieldRun("live work waits")


@dataclass
class _NewContact:
    line: int
    clean: dict


def _import_chunk(imp: CsvImport, token: str, chunk: list[tuple[int, list[str]]], columns: list[str],
                  actor: str) -> None:
    """Write one chunk's contacts, tags and consent events with the import's progress, in one commit."""
    workspace_id = imp.workspace_id
    rejects: list[list] = []
    tag_cache = {t.name.lower(): t for t in workspace_tags(workspace_id)}
    new: list[_NewContact] = []
    new_by_email: dict[str, _NewContact] = {}
    updated_ids: list[int] = []
    updated_rows = 0
    for decision in decide_rows(workspace_id, chunk, columns):
        if decision.is_rejected:
            rejects.append([decision.line, decision.reason])
        elif decision.contact is not None:
            _update(decision.contact, decision.clean,
                    _resolve_tags(workspace_id, decision.clean.get("tags", []), tag_cache),
                    actor=actor, note=imp.filename)
            updated_ids.append(decision.contact.id)
            updated_rows += 1
        elif decision.is_update:
            _merge(new_by_email[decision.email_key].clean, decision.clean)
            updated_rows += 1
        else:
            item = _NewContact(decision.line, decision.clean)
            new.append(item)
            if decision.email_key:
                new_by_email[decision.email_key] = item

    new_ids = _insert_new(workspace_id, new, tag_cache, actor=actor, note=imp.filename)
    imp.done += len(chunk)
    imp.imported += len(new)
    imp.updated += updated_rows
    imp.rejected += len(rejects)
    room = MAX_STORED_REJECTS - len(imp.rejects or [])
    if rejects and room > 0:
        imp.rejects = list(imp.rejects or []) + rejects[:room]
    background.checkpoint(imp, token)
    db.session.commit()
    announce(workspace_id, new_ids + sorted(set(updated_ids)), ContactChange.IMPORTED)


def _update(contact: Contact, clean: Mapping, tags: Mapping[str, Tag], *, actor: str, note: str) -> None:
    """Apply a row to an existing contact: non-empty cells replace, tags are added, consent is audited."""
    if "consent" in clean:
        record_consent(contact, clean["consent"], actor=actor, channel="csv_import", note=note[:300])
    changed = False
    for name in Contact.EDITABLE:
        if name in clean and clean[name] and (getattr(contact, name) or "") != clean[name]:
            setattr(contact, name, clean[name])
            changed = True
    if clean.get("tags"):
        have = {t.name.lower() for t in contact.tags}
        for tag in (tags[name.lower()] for name in clean["tags"]):
            if tag.name.lower() not in have:
                contact.tags.append(tag)
                have.add(tag.name.lower())
                changed = True
    if changed:
        contact.refresh_derived()
        contact.updated_at = utcnow()


def _merge(into: dict, later: Mapping) -> None:
    """A later row of the file for a contact the file creates: its non-empty values win, tags add up."""
    for key, value in later.items():
        if key == "tags":
            into["tags"] = list(into.get("tags", [])) + [t for t in value if t.lower() not in
                                                         {x.lower() for x in into.get("tags", [])}]
        elif value:
            into[key] = value


def _resolve_tags(workspace_id: int, names: list[str], cache: dict[str, Tag]) -> dict[str, Tag]:
    """`cache` (the workspace's tags by lower-cased name) completed with these names' missing tags.

    Matching happens in Python: SQL lower() only folds ASCII on SQLite, so "Île-de-France"
    would not find "île-de-france" there.
    """
    for name in clean_tag_names(names):
        if name.lower() not in cache:
            tag = Tag(workspace_id=workspace_id, name=name)
            db.session.add(tag)
            cache[name.lower()] = tag
    return cache


def _insert_new(workspace_id: int, new: list[_NewContact], tag_cache: dict[str, Tag], *, actor: str,
                note: str) -> list[int]:
    """Bulk-insert the chunk's new contacts, their tag links and consent events; their ids."""
    if not new:
        return []
    db.session.flush()  # tags the chunk created for updated contacts are then found, not made twice
    ids = insert_contacts(workspace_id, [item.clean for item in new], [item.clean.get("tags", []) for item in new])
    now = utcnow()
    events = [
        {"workspace_id": workspace_id, "contact_id": cid, "old": Consent.UNKNOWN, "new": item.clean["consent"],
         "locked": False, "actor": actor, "channel": Channel.CSV_IMPORT, "note": note[:300], "created_at": now}
        for cid, item in zip(ids, new) if item.clean.get("consent", Consent.UNKNOWN) != Consent.UNKNOWN
    ]
    if events:
        db.session.execute(insert(ConsentEvent), events)
    return ids


# --------------------------------------------------------------------------- the report

def rejects_csv(imp: CsvImport) -> str:
    """The rejected rows as CSV (line, reason, then the row as it was), in the file's delimiter;
    cells a spreadsheet would run as formulas are neutralised (:func:`protect_cell`)."""
    reasons = {line: reason for line, reason in (imp.rejects or [])}
    header = list((imp.mapping or {}).get("header") or [])
    out = io.StringIO()
    writer = csv.writer(out, delimiter=imp.delimiter, lineterminator="\r\n")
    writer.writerow([protect_cell(cell) for cell in (_("Line"), _("Reason"), *header)])
    if reasons:
        for line, row in data_records(imp):
            if line in reasons:
                writer.writerow([protect_cell(cell) for cell in (line, reasons[line], *row)])
    return out.getvalue()
