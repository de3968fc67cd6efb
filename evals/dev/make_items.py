"""Writes items.jsonl, the dev set: 80 questions written for this project, 16 of each kind the issue names —
multi-step arithmetic, comparisons of computed quantities, questions about the bicycle-rental database
(company.sql), two-hop questions about the documents in docs/, and Game of 24.

Every answer is computed here, not typed: arithmetic and comparisons from a Python expression kept in the item's
meta (`check`), sql answers by running the item's `check_sql` on company.sql loaded into a scratch database on
the Postgres at ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres), Game of 24 puzzles checked
solvable by search. The tests recompute all of them. Every third item of each kind (the 3rd, 6th, …) is held out;
the kinds take turns in the file, so the first N items sample every kind.

    python evals/dev/make_items.py [ADMIN_URL]
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRATCH_DB = "stepwise_dev_items"

# The names a `check` expression may use: what a word problem's working needs, nothing else.
CHECK_NAMES = {name: getattr(math, name) for name in ("gcd", "lcm", "factorial", "comb", "perm", "sqrt", "floor",
                                                      "ceil")}
CHECK_NAMES |= {"round": round, "min": min, "max": max, "abs": abs, "sum": sum, "range": range}


def run_check(expression: str):
    return eval(expression, {"__builtins__": {}, **CHECK_NAMES})  # noqa: S307 — our own expressions, no input


ARITHMETIC = [  # (question, check)
    ("A ferry makes 6 crossings a day. On weekdays it carries 85 passengers per crossing, on Saturdays and Sundays "
     "120. How many passengers does it carry in one week?", "6*85*5 + 6*120*2"),
    ("Ilka buys 3 notebooks at 4 euros each and 5 pens at 2 euros each, and pays with a 50-euro note. How many "
     "euros of change does she get?", "50 - (3*4 + 5*2)"),
    ("A village library has 1,240 books. It buys 15 boxes of 24 books each, then gives a quarter of its whole "
     "collection to a new school. How many books does the library have left?", "(1240 + 15*24) * 3 // 4"),
    ("An orchard has 1071 apple trees and 462 pear trees. The owner splits the orchard into identical plots, every "
     "plot with the same number of apple trees and the same number of pear trees, using every tree. What is the "
     "largest number of plots he can make?", "gcd(1071, 462)"),
    ("Seven runners finish a race and no two finish together. In how many different orders can they finish?",
     "factorial(7)"),
    ("A chess club of 10 members must send a team of 3 players to a tournament. How many different teams can it "
     "choose?", "comb(10, 3)"),
    ("A rain tank holds 1,000 litres and is 40% full. A pump adds 30 litres a minute. How many minutes does it "
     "take to fill the tank?", "(1000 - 1000*40//100) // 30"),
    ("Bus line A leaves the depot every 12 minutes and line B every 18 minutes. Both leave together at 8:00. "
     "After how many minutes do they next leave together?", "lcm(12, 18)"),
    ("A farmer has 3 fields, each with 14 rows of 26 cabbages. He packs the cabbages in crates of 12. How many "
     "full crates does he fill?", "3*14*26 // 12"),
    ("Tomas earns 18 euros an hour, works 7 hours a day and 5 days a week, and saves a third of his weekly pay. "
     "How many euros does he save in 4 weeks?", "18*7*5 // 3 * 4"),
    ("A recipe uses 250 g of flour for 10 biscuits. Mara bakes 48 biscuits from a 1,500 g bag of flour. How many "
     "grams of flour are left in the bag?", "1500 - 250*48 // 10"),
    ("A cinema has 14 rows of 20 seats. A school books 4 whole rows and fills them; 65% of the other seats are "
     "sold to the public. How many seats are taken?", "4*20 + (14-4)*20*65 // 100"),
    ("A runner covers 5 km on Monday and each following day 2 km more than the day before, up to and including "
     "Sunday. How many kilometres does she run that week?", "sum([5 + 2*d for d in range(7)])"),
    ("A printer prints 45 pages a minute. It must print 12 reports of 180 pages each, and it pauses 3 minutes to "
     "cool down after every full 10 minutes of printing, except when the job is finished. How many minutes does "
     "the whole job take?", "12*180 // 45 + 3 * ((12*180 // 45 - 1) // 10)"),
    ("The sum of three consecutive even numbers is 150. What is the largest of them?", "150 // 3 + 2"),
    ("A jacket costs 80 euros. In a sale its price is cut by 25%, and a coupon takes a further 10 euros off each "
     "jacket. How many euros does Jonas pay for two jackets?", "(80 * 3 // 4 - 10) * 2"),
]

COMPARISON = [  # (question, check, choices or None); a check with choices evaluates to the right choice
    ("Marlow's sells pens in packs of 12, three packs for 9 euros. Pendle's sells packs of 20 pens for 6 euros "
     "a pack. Which shop is cheaper per pen, Marlow's or Pendle's?", "'Marlow' if 9/36 < 6/20 else 'Pendle'",
     ["Marlow", "Pendle"]),
    ("Rhea walks at 5 km an hour for 3 hours. Sven cycles at 16 km an hour for an hour and a half. How many "
     "kilometres farther does the one who goes farther travel?", "abs(5*3 - 16*1.5)", None),
    ("Phone plan Alder costs 12 euros a month plus 5 cents a minute; plan Birch costs 20 euros a month with "
     "unlimited calls. For someone who calls 200 minutes a month, which plan is cheaper, Alder or Birch?",
     "'Alder' if 12 + 0.05*200 < 20 else 'Birch'", ["Alder", "Birch"]),
    ("Which is larger, 2 to the power 10 or 10 cubed, and by how much? Give the difference.", "abs(2**10 - 10**3)",
     None),
    ("A field is a rectangle 18 m by 12 m; a courtyard is a square with 15 m sides. By how many square metres "
     "does the larger area exceed the smaller?", "abs(18*12 - 15*15)", None),
    ("Team Heron scored 3 goals in each of 7 matches and 5 goals in each of 2 more. Team Ibis scored 4 goals in "
     "each of 8 matches. Which team scored more goals in total, Heron or Ibis?",
     "'Heron' if 3*7 + 5*2 > 4*8 else 'Ibis'", ["Heron", "Ibis"]),
    ("Farm Ostrow has 240 hens that each lay 5 eggs a week. Farm Quist has 180 hens that each lay 6 eggs a week. "
     "How many more eggs a week does the more productive farm collect?", "abs(240*5 - 180*6)", None),
    ("Compare the number of minutes in one week with the number of seconds in three hours. By how much does the "
     "larger exceed the smaller?", "abs(7*24*60 - 3*60*60)", None),
    ("Nadia earns 22 euros an hour for 35 hours a week. Omar earns 900 euros a week plus 40 euros for each of "
     "his 3 evening shifts. Who earns more in a week, Nadia or Omar?", "'Nadia' if 22*35 > 900 + 40*3 else 'Omar'",
     ["Nadia", "Omar"]),
    ("A 2-litre bottle of juice costs 3.60 euros and a 750 ml bottle costs 1.50 euros. By how many cents per litre "
     "is the cheaper bottle cheaper?", "round(abs(360/2 - 150/0.75))", None),
    ("Car Corvo uses 6 litres of fuel per 100 km and car Dessa uses 8 litres per 100 km. On a 450 km trip with "
     "fuel at 2 euros a litre, how many euros more does the thirstier car's fuel cost?",
     "round(abs(450/100*8 - 450/100*6) * 2)", None),
    ("Which is larger, the sum of the whole numbers from 1 to 20, or 15 times 13? By how much?",
     "abs(sum(range(1, 21)) - 15*13)", None),
    ("Warehouse Elm has 14 shelves of 36 boxes. Warehouse Fir has 19 shelves of 27 boxes. Which warehouse holds "
     "more boxes, Elm or Fir?", "'Elm' if 14*36 > 19*27 else 'Fir'", ["Elm", "Fir"]),
    ("Lena reads 35 pages a day for 12 days. Milo reads 48 pages a day for 9 days. Who has read more pages, Lena "
     "or Milo?", "'Lena' if 35*12 > 48*9 else 'Milo'", ["Lena", "Milo"]),
    ("Which is larger, 7 factorial or 2 to the power 12, and by how much? Give the difference.",
     "abs(factorial(7) - 2**12)", None),
    ("A bakery sells 140 loaves at 3 euros and 90 cakes at 4.50 euros. A café sells 300 coffees at 2.20 euros. "
     "How many euros more does the one that takes more take?", "round(abs(140*3 + 90*4.5 - 300*2.2))", None),
]

SQL = [  # (question, check_sql): one row, one column; a "which" query lists every row tied for first
    ("How many of the bike-share network's stations are in Brennock?",
     "SELECT count(*) FROM stations WHERE town = 'Brennock'"),
    ("How many electric bikes does the bike-share fleet have?", "SELECT count(*) FROM bikes WHERE kind = 'electric'"),
    ("How many bike-share members are on the annual plan?", "SELECT count(*) FROM members WHERE plan = 'annual'"),
    ("What was the total of all bike rental fares taken in March 2026, in euros?",
     "SELECT sum(fare) FROM rentals WHERE rented_on >= '2026-03-01' AND rented_on < '2026-04-01'"),
    ("On average, how many minutes does a rental of a cargo bike last? Round to one decimal place.",
     "SELECT round(avg(r.minutes), 1) FROM rentals r JOIN bikes b USING (bike_id) WHERE b.kind = 'cargo'"),
    ("Which bike-share station has the most docks?",
     "SELECT name FROM stations WHERE docks = (SELECT max(docks) FROM stations)"),
    ("Which bike-share member has made the most rentals?",
     "WITH c AS (SELECT member_id, count(*) AS n FROM rentals GROUP BY member_id) "
     "SELECT m.full_name FROM c JOIN members m USING (member_id) WHERE c.n = (SELECT max(n) FROM c)"),
    ("From which station did the most bike rentals start?",
     "WITH c AS (SELECT from_station_id, count(*) AS n FROM rentals GROUP BY from_station_id) "
     "SELECT s.name FROM c JOIN stations s ON s.station_id = c.from_station_id WHERE c.n = (SELECT max(n) FROM c)"),
    ("How many bike rentals ended at a different station from the one they started at?",
     "SELECT count(*) FROM rentals WHERE to_station_id <> from_station_id"),
    ("What do all the bike-share mechanics earn per hour together, in euros?",
     "SELECT sum(hourly_wage) FROM staff WHERE role = 'mechanic'"),
    ("How many bike-share staff work at stations in Calder?",
     "SELECT count(*) FROM staff JOIN stations USING (station_id) WHERE stations.town = 'Calder'"),
    ("Which bike model has been ridden for the most minutes in total?",
     "WITH c AS (SELECT b.model, sum(r.minutes) AS n FROM rentals r JOIN bikes b USING (bike_id) GROUP BY b.model) "
     "SELECT model FROM c WHERE n = (SELECT max(n) FROM c)"),
    ("How many bike-share members joined in 2024 or later?", "SELECT count(*) FROM members WHERE joined_year >= 2024"),
    ("What is the average fare of the rentals made by members who live in Ashby, in euros, rounded to two "
     "decimal places?",
     "SELECT round(avg(r.fare), 2) FROM rentals r JOIN members m USING (member_id) WHERE m.town = 'Ashby'"),
    ("Which bike-share member made the single longest rental?",
     "SELECT m.full_name FROM rentals r JOIN members m USING (member_id) "
     "WHERE r.minutes = (SELECT max(minutes) FROM rentals)"),
    ("How many different members have rented an electric bike?",
     "SELECT count(DISTINCT r.member_id) FROM rentals r JOIN bikes b USING (bike_id) WHERE b.kind = 'electric'"),
]

DOCS = [  # (question, answer, anchor: what the question names, [(file, words the hop needs)] for the two hops)
    ("Who founded the company that built the Varn Bridge?", "Mirela Dunstan", "Varn Bridge",
     [("varn_bridge.md", ["Halloway Ironworks"]), ("halloway_ironworks.md", ["Mirela Dunstan"])]),
    ("In which year was the teacher of the engineer Tobias Reyne born?", 1817, "Tobias Reyne",
     [("tobias_reyne.md", ["Ilse Varga"]), ("ilse_varga.md", ["1817"])]),
    ("In which town was the inventor of the Corlew lamp born?", "Emberly", "Corlew",
     [("corlew_lamp.md", ["Petra Sallow"]), ("petra_sallow.md", ["Emberly"])]),
    ("In which town was the glassworks that made the Corlew lamp's chimneys founded?", "Quenmoor", "Corlew",
     [("corlew_lamp.md", ["Dunmore Glassworks"]), ("dunmore_glassworks.md", ["Quenmoor"])]),
    ("On which river stands the town where the Saltmarsh Accord was signed?", "Ferrin", "Saltmarsh Accord",
     [("saltmarsh_accord.md", ["Carrowdale"]), ("carrowdale.md", ["Ferrin"])]),
    ("In which year was the diplomat who negotiated the Saltmarsh Accord born?", 1866, "Saltmarsh Accord",
     [("saltmarsh_accord.md", ["Hester Bellamy"]), ("hester_bellamy.md", ["1866"])]),
    ("Which ship did the founder of the Grey Lantern Society command?", "Kestrel", "Grey Lantern",
     [("grey_lantern_society.md", ["Oswin Marrable"]), ("oswin_marrable.md", ["Kestrel"])]),
    ("Who founded the shipyard that built the survey ship Kestrel?", "Agnes Pell", "Kestrel",
     [("kestrel.md", ["Pell Shipwrights"]), ("pell_shipwrights.md", ["Agnes Pell"])]),
    ("In which year was the first director of the Merrow Observatory born?", 1824, "Merrow",
     [("merrow_observatory.md", ["Anselm Quill"]), ("anselm_quill.md", ["1824"])]),
    ("Who founded the printing house that first printed the Blue Almanac?", "Jonah Treadwell", "Blue Almanac",
     [("blue_almanac.md", ["Osterwick Press"]), ("osterwick_press.md", ["Jonah Treadwell"])]),
    ("In which town was the first editor of the Blue Almanac born?", "Quenmoor", "Blue Almanac",
     [("blue_almanac.md", ["Lorna Keble"]), ("lorna_keble.md", ["Quenmoor"])]),
    ("In which town was the engineer of the Ferrin Canal born?", "Tallowmere", "Ferrin Canal",
     [("ferrin_canal.md", ["Dorcas Whitlow"]), ("dorcas_whitlow.md", ["Tallowmere"])]),
    ("Under whom did the maker of the Velloran Clock serve his apprenticeship?", "Mathis Ruel", "Velloran",
     [("velloran_clock.md", ["Ivo Brandt"]), ("ivo_brandt.md", ["Mathis Ruel"])]),
    ("In which year was the first winner of the Stellan Prize born?", 1812, "Stellan Prize",
     [("stellan_prize.md", ["Maren Holt"]), ("maren_holt.md", ["1812"])]),
    ("Who founded the academy where the mathematician Ilse Varga taught?", "Corwin Astley", "Ilse Varga",
     [("ilse_varga.md", ["Lanthorn Technical Academy"]), ("lanthorn_academy.md", ["Corwin Astley"])]),
    ("What was the name of the shipping firm of the man who founded the Lanthorn Technical Academy?", "Marlin Line",
     "Lanthorn Technical Academy",
     [("lanthorn_academy.md", ["Corwin Astley"]), ("corwin_astley.md", ["Marlin Line"])]),
]

GAME24_TEMPLATES = (
    "Make 24 from the numbers {numbers} using +, -, * and / and parentheses, each number exactly once. Reply with "
    "the expression only.",
    "Using each of {numbers} exactly once, with + - * / and brackets, write an expression equal to 24. Reply with "
    "the expression only.",
)


def solve_24(numbers: list[int]) -> str | None:
    """One expression over the numbers (each once, + - * /) equal to 24, or None: exhaustive, exact fractions."""

    def search(values: list[tuple[Fraction, str]]) -> str | None:
        if len(values) == 1:
            return values[0][1] if values[0][0] == 24 else None
        for i, j in itertools.permutations(range(len(values)), 2):
            (a, x), (b, y) = values[i], values[j]
            rest = [values[k] for k in range(len(values)) if k not in (i, j)]
            options = [(a + b, f"({x} + {y})"), (a - b, f"({x} - {y})"), (a * b, f"({x} * {y})")]
            if b != 0:
                options.append((a / b, f"({x} / {y})"))
            for value in options:
                found = search([*rest, value])
                if found:
                    return found
        return None

    found = search([(Fraction(n), str(n)) for n in numbers])
    return found[1:-1] if found and found.startswith("(") else found


def game24_puzzles(count: int = 16, seed: int = 24) -> list[tuple[list[int], str]]:
    """Solvable puzzles of four numbers from 1 to 13, drawn with a fixed seed (their solutions kept in meta)."""
    rng = random.Random(seed)
    chosen: list[tuple[list[int], str]] = []
    seen: set[tuple[int, ...]] = set()
    while len(chosen) < count:
        numbers = sorted(rng.randint(1, 13) for _ in range(4))
        if tuple(numbers) in seen:
            continue
        seen.add(tuple(numbers))
        solution = solve_24(numbers)
        if solution:
            chosen.append((numbers, solution))
    return chosen


def _value(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


async def sql_answers(admin_url: str) -> list:
    import asyncpg

    sys.path.insert(0, str(HERE.parent.parent))
    from stepwise.evals import devdb

    await devdb.load(admin_url, HERE / "company.sql", SCRATCH_DB)
    conn = await asyncpg.connect(devdb.with_database(admin_url, SCRATCH_DB))
    try:
        answers = []
        for question, query in SQL:
            rows = await conn.fetch(query)
            if len(rows) != 1 or len(rows[0]) != 1:
                raise SystemExit(f"{question!r}: {len(rows)} rows — a question must have one answer")
            answers.append(_value(rows[0][0]))
        return answers
    finally:
        await conn.close()
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        await admin.close()


def items(sql_values: list) -> list[dict]:
    rows: list[dict] = []

    def add(kind: str, question: str, answer, answer_type: str, meta: dict) -> None:
        n = sum(r["kind"] == kind for r in rows) + 1
        split = "heldout" if n % 3 == 0 else "dev"
        rows.append({"id": f"dev-{kind}-{n:02d}", "question": question, "answer": answer, "answer_type": answer_type,
                     "kind": kind, "split": split, "meta": meta})

    for question, check in ARITHMETIC:
        value = _value(run_check(check))
        assert isinstance(value, int), (question, value)
        add("arithmetic", question, value, "number", {"check": check, "tools": []})
    for question, check, choices in COMPARISON:
        value = _value(run_check(check))
        if choices:
            add("comparison", question, value, "text", {"check": check, "choices": choices, "tools": []})
        else:
            assert isinstance(value, int), (question, value)
            add("comparison", question, value, "number", {"check": check, "tools": []})
    for (question, query), value in zip(SQL, sql_values, strict=True):
        add("sql", question, value, "text" if isinstance(value, str) else "number",
            {"check_sql": query, "tools": ["sql"]})
    for question, answer, anchor, hops in DOCS:
        add("docs", question, answer, "number" if isinstance(answer, int) else "text",
            {"anchor": anchor, "hops": [{"file": f, "words": w} for f, w in hops], "tools": ["docs"]})
    for i, (numbers, solution) in enumerate(game24_puzzles()):
        question = GAME24_TEMPLATES[i % 2].format(numbers=", ".join(map(str, numbers)))
        add("game24", question, 24, "expression", {"numbers": numbers, "solution": solution, "tools": []})
    # kinds take turns in the file, so the first N items (`--limit N`) sample every kind
    order = {kind: i for i, kind in enumerate(dict.fromkeys(r["kind"] for r in rows))}
    return sorted(rows, key=lambda r: (int(r["id"].rsplit("-", 1)[1]), order[r["kind"]]))


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
    rows = items(asyncio.run(sql_answers(url)))
    out = HERE / "items.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {out}: {len(rows)} items, {sum(r['split'] == 'heldout' for r in rows)} held out")
