"""Realistic French demo contacts, generated deterministically and inserted in bulk.

Used by `flask seed-demo` (about 2,000 contacts) and by the benchmarks (100,000).
"""
from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import timedelta

from sqlalchemy import select

from portal.crm.contacts import insert_contacts as insert_many
from portal.db_setup import refresh_statistics
from portal.extensions import db
from portal.models import Tag, utcnow

BIG_LOAD = 5000
"""Contacts after which the planner statistics are refreshed (see db_setup.refresh_statistics)."""

FIRST = ("Camille Léa Manon Chloé Inès Emma Jade Louise Alice Lina Zoé Juliette Élodie Sarah Clara Anaïs "
         "Mathilde Hélène Margaux Agathe Lucas Hugo Louis Gabriel Arthur Jules Nathan Léo Raphaël Tom "
         "Théo Paul Antoine Maxime Nicolas Julien Thomas Étienne François Benoît Cédric Rémi Noël Joël").split()
LAST = ("Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefèvre "
        "Michel Garcia David Bertrand Roux Vincent Fournier Morel Girard André Mercier Dupont Lambert "
        "Bonnet François Martinez Legrand Garnier Faure Rousseau Blanc Guérin Muller Henry Roussel "
        "Nicolas Perrin Morin Mathieu Clément Gauthier Dumont Lopez Fontaine Chevalier Robin Masson").split()
COMPANIES = ("Boulangerie Ardent", "Atelier Lumière", "Cabinet Verdier", "Librairie du Quai", "Maison Carrel",
             "Transports Vallée", "Studio Nacre", "Fromagerie Bel-Air", "Agence Mistral", "Garage Lemaire",
             "Pépinières Roche", "Hôtel des Cèdres", "Imprimerie Duval", "Brasserie l'Écluse", "Optique Soleil",
             "Ferme des Tilleuls", "Menuiserie Aubry", "Pharmacie Centrale", "Domaine Saint-Roch", "Clinique Véto Sud")
JOBS = ("Gérante", "Directeur commercial", "Responsable marketing", "Comptable", "Assistante de direction",
        "Chef de projet", "Acheteur", "Fondatrice", "Responsable RH", "Technicien", "")
CITIES = (("Paris", "75011"), ("Lyon", "69003"), ("Marseille", "13006"), ("Toulouse", "31000"),
          ("Nantes", "44000"), ("Bordeaux", "33000"), ("Lille", "59000"), ("Strasbourg", "67000"),
          ("Rennes", "35000"), ("Montpellier", "34000"), ("Grenoble", "38000"), ("Dijon", "21000"))
STREETS = ("rue de la République", "avenue Jean Jaurès", "boulevard Voltaire", "rue Victor Hugo",
           "place de la Mairie", "chemin des Vignes", "rue du Moulin", "allée des Tilleuls")
TAGS = ("Clients", "Prospects", "Partenaires", "VIP", "Newsletter", "Salon 2026", "Île-de-France",
        "Revendeurs", "Presse", "Anciens clients")
DOMAINS = ("orange.fr", "free.fr", "laposte.net", "gmail.com", "sfr.fr", "wanadoo.fr", "outlook.fr")


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def ensure_tags(workspace_id: int, names: Sequence[str] = TAGS) -> dict[str, int]:
    """Create the demo tags if missing; their ids by name."""
    existing = {t.name: t.id for t in db.session.scalars(select(Tag).where(Tag.workspace_id == workspace_id))}
    for name in names:
        if name not in existing:
            tag = Tag(workspace_id=workspace_id, name=name)
            db.session.add(tag)
            db.session.flush()
            existing[name] = tag.id
    return existing


def make_rows(workspace_id: int, count: int, *, seed: int = 42, start: int = 0,
              bad_email_rate: float = 0.01, duplicate_rate: float = 0.005, tagged_rate: float = 0.3) -> Iterator[tuple[dict, list[str]]]:
    """Yield (contact row dict, tag names) pairs; the same seed gives the same contacts."""
    rnd = random.Random(seed)
    now = utcnow()
    previous_emails: list[str] = []
    for i in range(start, start + count):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        company = rnd.choice(COMPANIES) if rnd.random() < 0.7 else ""
        city, postcode = rnd.choice(CITIES)
        roll = rnd.random()
        if roll < bad_email_rate:
            email = rnd.choice([f"{_ascii(first)}.{_ascii(last)}@", f"{_ascii(first)} {_ascii(last)}@orange.fr", ""])
        elif roll < bad_email_rate + duplicate_rate and previous_emails:
            email = rnd.choice(previous_emails)
        else:
            email = f"{_ascii(first)}.{_ascii(last)}{i}@{rnd.choice(DOMAINS)}"
            if len(previous_emails) < 500:
                previous_emails.append(email)
        consent = rnd.choices(("opt_in", "opt_out", "unknown"), weights=(70, 10, 20))[0]
        created = now - timedelta(days=rnd.randint(0, 900), minutes=rnd.randint(0, 1440))
        row = {
            "email": email or None, "first_name": first, "last_name": last, "company": company,
            "job_title": rnd.choice(JOBS) if company else "",
            "phone": f"0{rnd.randint(1, 7)} {rnd.randint(10, 99)} {rnd.randint(10, 99)} {rnd.randint(10, 99)} {rnd.randint(10, 99)}",
            "street": f"{rnd.randint(1, 120)} {rnd.choice(STREETS)}", "postal_code": postcode, "city": city,
            "country": "France", "consent": consent, "created_at": created, "updated_at": created,
        }
        tags: list[str] = []
        if rnd.random() < tagged_rate:
            tags = rnd.sample(TAGS, rnd.randint(1, 3))
        yield row, tags


def insert_contacts(workspace_id: int, count: int, *, seed: int = 42, batch: int = 2000, **kw) -> int:
    """Bulk-insert `count` generated contacts (with tags) into a workspace, committing every
    `batch`; returns how many. Planner statistics are refreshed after a large load."""
    ensure_tags(workspace_id)
    rows, tag_lists, done = [], [], 0
    for row, tags in make_rows(workspace_id, count, seed=seed, **kw):
        rows.append(row)
        tag_lists.append(tags)
        if len(rows) >= batch:
            done += _flush(workspace_id, rows, tag_lists)
            rows, tag_lists = [], []
    if rows:
        done += _flush(workspace_id, rows, tag_lists)
    if done >= BIG_LOAD:
        refresh_statistics(db.engine)
    return done


def _flush(workspace_id: int, rows: list[dict], tag_lists: list[list[str]]) -> int:
    insert_many(workspace_id, rows, tag_lists)
    db.session.commit()
    return len(rows)
