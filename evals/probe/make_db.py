"""The probe set's database (company.sql): a small company — departments, employees, projects, assignments — like
the one issue 11 was filed with, generated from a fixed seed. `python make_db.py` writes company.sql again."""

import random
from pathlib import Path

random.seed(7)  # the same database every time
DEPARTMENTS = [(1, "Research", 3, 420000), (2, "Sales", 1, 260000), (3, "Engineering", 2, 610000),
               (4, "Finance", 4, 180000), (5, "Support", 1, 150000)]
FIRST = ("Ada Bram Cora Dmitri Elin Farid Greta Hugo Ines Jonas Kaia Lev Mona Nils Oona Pavel Rhea Soren Tove Umar "
         "Vera Wim Xena Yusuf Zora Anton Bea Cyril Dana Emil Frida Gus Hana Ivo Juno Kurt Lina Mats Nora Otto").split()
LAST = "Lind Marsh Quist Rowe Sato Thorn Ueda Vance Wolff Yates".split()
PROJECTS = [(1, "Atlas", 3, "2021-03-01", 120000, "active"), (2, "Beacon", 1, "2020-06-15", 80000, "done"),
            (3, "Cobalt", 3, "2022-01-10", 150000, "active"), (4, "Delta", 2, "2022-09-01", 40000, "active"),
            (5, "Ember", 1, "2023-02-20", 95000, "active"), (6, "Fjord", 4, "2019-11-05", 30000, "done"),
            (7, "Garnet", 5, "2023-05-01", 25000, "paused"), (8, "Harbor", 3, "2021-08-08", 70000, "done"),
            (9, "Iris", 2, "2023-10-12", 55000, "active"), (10, "Juniper", 1, "2022-04-04", 110000, "paused")]


def main() -> None:
    employees = []
    for i, first in enumerate(FIRST, 1):
        department = DEPARTMENTS[(i - 1) % 5][0]
        title = "Manager" if i <= 5 else random.choice(["Engineer", "Analyst", "Associate", "Scientist"])
        salary = random.randrange(42000, 98000, 500) if title != "Manager" else random.randrange(95000, 130000, 500)
        hired = f"{random.choice(range(2016, 2024))}-{random.randint(1, 12):02d}-{random.randint(1, 28):02d}"
        manager = None if i <= 5 else department  # the first five manage the five departments
        employees.append((i, f"{first} {LAST[i % 10]}", department, title, salary, hired, manager))
    pairs: set[tuple[int, int]] = set()
    assignments = []
    while len(assignments) < 90:
        employee, project = random.randint(1, 40), random.randint(1, 10)
        if (employee, project) in pairs:
            continue
        pairs.add((employee, project))
        assignments.append((employee, project, random.choice(["lead", "member", "member", "reviewer"]),
                            random.choice([5, 10, 15, 20, 25, 30, 40])))
    out = [
        "DROP TABLE IF EXISTS assignments, projects, employees, departments;",
        "CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, floor int NOT NULL, budget int NOT NULL);",
        "CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, department_id int REFERENCES departments(id), "
        "title text NOT NULL, salary int NOT NULL, hired_on date NOT NULL, manager_id int REFERENCES employees(id));",
        "CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL, department_id int REFERENCES departments(id), "
        "started_on date NOT NULL, budget int NOT NULL, status text NOT NULL);",
        "CREATE TABLE assignments (employee_id int REFERENCES employees(id), project_id int REFERENCES projects(id), "
        "role text NOT NULL, hours_allocated int NOT NULL, PRIMARY KEY (employee_id, project_id));",
    ]
    out += [f"INSERT INTO departments VALUES ({a},'{b}',{c},{d});" for a, b, c, d in DEPARTMENTS]
    out += [f"INSERT INTO employees VALUES ({a},'{b}',{c},'{d}',{e},'{f}',NULL);" for a, b, c, d, e, f, _ in employees]
    out += [f"UPDATE employees SET manager_id={g} WHERE id={a};" for a, *_, g in employees if g is not None]
    out += [f"INSERT INTO projects VALUES ({a},'{b}',{c},'{d}',{e},'{f}');" for a, b, c, d, e, f in PROJECTS]
    out += [f"INSERT INTO assignments VALUES ({a},{b},'{c}',{d});" for a, b, c, d in assignments]
    (Path(__file__).parent / "company.sql").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
