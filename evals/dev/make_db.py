"""Writes company.sql, the dev set's database: a bicycle-rental network's stations, bikes, members, rentals and
staff. Generated, not hand-typed, so it is the same every time (a fixed seed) and easy to regrow; run
`python evals/dev/make_db.py` after changing it, then `python evals/dev/make_items.py` to recompute the sql
items' answers (the integration test checks them against the loaded database).

Names are unique and the numbers are drawn so that each question's "which one" has a single answer (make_items.py
refuses a tie)."""

from __future__ import annotations

import datetime
import random
from pathlib import Path

SEED = 20261130
HERE = Path(__file__).resolve().parent

STATIONS = [  # name, town, opened, docks
    ("Harbour Gate", "Ashby", 2015, 24),
    ("Mill Lane", "Ashby", 2016, 18),
    ("Old Market", "Ashby", 2014, 30),
    ("Riverside Park", "Brennock", 2017, 20),
    ("North Quay", "Brennock", 2019, 16),
    ("Chapel Hill", "Calder", 2018, 14),
    ("Station Square", "Calder", 2013, 26),
    ("Foundry Yard", "Calder", 2021, 12),
]
MODELS = {"city": ["Strada", "Urbano"], "electric": ["Voltra", "Zephyr"], "cargo": ["Mule"]}
RATE = {"city": 0.08, "electric": 0.20, "cargo": 0.15}  # euros per minute, after 1.00 to unlock
FIRST = ["Ada", "Bruno", "Clara", "Dmitri", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaia", "Luca",
         "Mira", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Soren", "Talia", "Umar", "Vera", "Wim", "Yara", "Zeno"]
LAST = ["Abbott", "Brandt", "Costa", "Dahl", "Eriksen", "Fischer", "Gallo", "Hartmann", "Ivanova", "Jansen",
        "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quaresma", "Rossi", "Sato", "Tanaka"]
PLANS = ["annual", "monthly", "pay-as-you-go"]
ROLES = [("manager", 24.00), ("mechanic", 19.50), ("attendant", 15.00)]


def _names(rng: random.Random, count: int) -> list[str]:
    pool = [f"{first} {last}" for first in FIRST for last in LAST]
    return rng.sample(pool, count)


def rows(seed: int = SEED) -> dict[str, list[tuple]]:
    rng = random.Random(seed)
    stations = [(i, *s) for i, s in enumerate(STATIONS, 1)]
    bikes = []
    for bike_id in range(1, 65):
        kind = rng.choices(["city", "electric", "cargo"], weights=[5, 3, 1])[0]
        bikes.append((bike_id, rng.randint(1, len(STATIONS)), rng.choice(MODELS[kind]), kind, rng.randint(2018, 2025)))
    people = _names(rng, 90 + 24)
    members = []
    for member_id in range(1, 91):
        members.append((member_id, people[member_id - 1], rng.choice(["Ashby", "Brennock", "Calder"]),
                        rng.choices(PLANS, weights=[3, 4, 3])[0], rng.randint(2019, 2025)))
    rentals = []
    start = datetime.date(2026, 1, 1)
    # A few members ride far more than the rest, so "who rode most" has one answer.
    weights = [8 if m in (7, 23, 61) else 1 for m in range(1, 91)]
    weights[22] = 11
    for rental_id in range(1, 301):
        bike = rng.choice(bikes)
        member = rng.choices(range(1, 91), weights=weights)[0]
        origin = rng.randint(1, len(STATIONS))
        destination = origin if rng.random() < 0.35 else rng.randint(1, len(STATIONS))
        minutes = rng.randint(6, 75) if bike[3] != "cargo" else rng.randint(15, 120)
        fare = round(1.0 + RATE[bike[3]] * minutes, 2)
        day = start + datetime.timedelta(days=rng.randint(0, 119))
        rentals.append((rental_id, bike[0], member, origin, destination, day, minutes, fare))
    staff = []
    for staff_id in range(1, 25):
        station = (staff_id - 1) % len(STATIONS) + 1
        role, wage = ROLES[0] if staff_id <= len(STATIONS) else rng.choice(ROLES[1:])
        wage = wage + rng.choice([0, 0.5, 1.0, 1.5]) if role != "manager" else wage + station * 0.25
        staff.append((staff_id, people[90 + staff_id - 1], station, role, wage, rng.randint(2013, 2025)))
    return {"stations": stations, "bikes": bikes, "members": members, "rentals": rentals, "staff": staff}


SCHEMA = """\
CREATE TABLE stations (
    station_id  integer PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    town        text NOT NULL,
    opened_year integer NOT NULL,
    docks       integer NOT NULL
);
CREATE TABLE bikes (
    bike_id         integer PRIMARY KEY,
    home_station_id integer NOT NULL REFERENCES stations,
    model           text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('city', 'electric', 'cargo')),
    bought_year     integer NOT NULL
);
CREATE TABLE members (
    member_id   integer PRIMARY KEY,
    full_name   text NOT NULL UNIQUE,
    town        text NOT NULL,
    plan        text NOT NULL CHECK (plan IN ('annual', 'monthly', 'pay-as-you-go')),
    joined_year integer NOT NULL
);
CREATE TABLE rentals (
    rental_id       integer PRIMARY KEY,
    bike_id         integer NOT NULL REFERENCES bikes,
    member_id       integer NOT NULL REFERENCES members,
    from_station_id integer NOT NULL REFERENCES stations,
    to_station_id   integer NOT NULL REFERENCES stations,
    rented_on       date NOT NULL,
    minutes         integer NOT NULL,
    fare            numeric(6, 2) NOT NULL
);
CREATE TABLE staff (
    staff_id    integer PRIMARY KEY,
    full_name   text NOT NULL UNIQUE,
    station_id  integer NOT NULL REFERENCES stations,
    role        text NOT NULL CHECK (role IN ('manager', 'mechanic', 'attendant')),
    hourly_wage numeric(5, 2) NOT NULL,
    hired_year  integer NOT NULL
);
"""


def _literal(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render(tables: dict[str, list[tuple]]) -> str:
    parts = ["-- The dev set's database: a bicycle-rental network. Generated by make_db.py (seed "
             f"{SEED}); edit that, not this file.\n", SCHEMA]
    for table, values in tables.items():
        lines = ",\n".join("    (" + ", ".join(_literal(v) for v in row) + ")" for row in values)
        parts.append(f"\nINSERT INTO {table} VALUES\n{lines};\n")
    return "".join(parts)


if __name__ == "__main__":
    out = HERE / "company.sql"
    tables = rows()
    out.write_text(render(tables))
    print(f"wrote {out}: " + ", ".join(f"{len(v)} {k}" for k, v in tables.items()))
