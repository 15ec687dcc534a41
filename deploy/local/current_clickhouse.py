"""Runs the SQL shoplens ships on current ClickHouse, embedded (chdb).

The test stack runs ClickHouse 18.16 (Debian's); users run current servers
(docker-compose uses 24.8). This script checks, on the engine chdb embeds:
  - the one-server migrations, with retention (TTL), execute;
  - every view answers over random rows of every table (generateRandom);
  - every SQL block of docs/analyst-guide.md and every ClickHouse panel query
    of the Grafana dashboards run;
  - the erasure statements of `shoplens forget` delete a person's rows
    (lightweight deletes) and only them;
  - the cluster layout's statements and deploy/clickhouse/access.sql parse
    (EXPLAIN AST: a real cluster needs servers; the stack's two-shard
    18.16 cluster executes them in tests/tests/clickhouse_layouts.rs).

Usage: current_clickhouse.py <path to the shoplens binary>
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

from chdb import session

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def plan(binary, **env):
    full = dict(os.environ)
    full.update({f"CLICKHOUSE__{k.upper()}": str(v) for k, v in env.items()})
    out = subprocess.run(
        [binary, "migrate", "--print"], env=full, check=True, capture_output=True, text=True
    ).stdout
    return [s.strip() for s in out.split(";\n\n") if s.strip()]


def sql_blocks(path):
    text = open(path, encoding="utf-8").read()
    return [b.strip().rstrip(";") for b in re.findall(r"```sql\n(.*?)```", text, re.S)]


def panel_queries():
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy/grafana/dashboards/*.json"))):
        board = json.load(open(path, encoding="utf-8"))
        for panel in board["panels"]:
            if panel.get("datasource", {}).get("uid") != "clickhouse":
                continue
            for target in panel["targets"]:
                sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= now() - INTERVAL 30 DAY", target["rawSql"])
                yield f"{board['title']} / {panel['title']}", sql


def main():
    binary = sys.argv[1]
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(os.path.join(tmp, "db"))
        version = s.query("SELECT version()", "TSV").data().strip()

        def run(what, sql):
            nonlocal checked
            try:
                s.query(sql, "TSV")
            except Exception as e:  # noqa: BLE001 - report which statement failed
                sys.exit(f"current ClickHouse {version}: {what} failed: {e}\n{sql}")
            checked += 1

        for stmt in plan(binary, retention_days=400):
            run("migration", stmt)
        tables = s.query(
            "SELECT name FROM system.tables WHERE database = 'shoplens' AND engine LIKE '%MergeTree' ORDER BY name",
            "TSV",
        ).data().split()
        ttl = s.query(
            "SELECT count() FROM system.tables WHERE database = 'shoplens' AND create_table_query LIKE '%TTL %'",
            "TSV",
        ).data().strip()
        if int(ttl) < 5:
            sys.exit(f"retention: only {ttl} tables have a TTL")
        for table in tables:
            structure = s.query(
                f"SELECT arrayStringConcat(groupArray(concat(name, ' ', type)), ', ') FROM system.columns "
                f"WHERE database = 'shoplens' AND table = '{table}'",
                "TSV",
            ).data().strip()
            # Stage arrays are parallel (one entry per funnel stage) in real rows.
            arrays = {
                "Array(String)": "['session', 'order_placed']",
                "Array(UInt64)": "[2, 1]",
            }
            fixed = [
                f"{arrays[t]} AS {n}"
                for n, t in (c.split(" ", 1) for c in structure.split(", "))
                if t in arrays
            ]
            replace = f" REPLACE ({', '.join(fixed)})" if fixed else ""
            run(
                f"random rows into {table}",
                f"INSERT INTO shoplens.{table} SELECT *{replace} FROM generateRandom('{structure}', 1, 12, 3) LIMIT 200 "
                "SETTINGS max_partitions_per_insert_block = 0",
            )
        # Erasure: the lightweight deletes `shoplens forget` runs on current
        # servers remove a person's rows, matched by salted hash, and only them.
        person = "o'brien"
        env = dict(os.environ, ERASURE__SALT="check-salt")
        erase = subprocess.run(
            [binary, "forget", "--anonymous-id", person, "--print-sql"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
        kept = s.query("SELECT count() FROM shoplens.sessions", "TSV").data().strip()
        run("a person's session", "INSERT INTO shoplens.sessions (session_id, anonymous_id, user_id) "
            "VALUES ('erase-check', 'o\\'brien', '')")
        for stmt in (x.strip().rstrip(";") for x in erase.split(";\n\n")):
            if stmt:
                run("erasure statement", stmt)
        left = s.query("SELECT count() FROM shoplens.sessions WHERE anonymous_id = 'o\\'brien'", "TSV").data().strip()
        after = s.query("SELECT count() FROM shoplens.sessions", "TSV").data().strip()
        if left != "0" or after != kept:
            sys.exit(f"erasure on current ClickHouse: {left} of the person's rows left, {after} of {kept} others")
        views = s.query(
            "SELECT name FROM system.tables WHERE database = 'shoplens' AND engine = 'View' ORDER BY name", "TSV"
        ).data().split()
        for view in views:
            run(f"view {view}", f"SELECT * FROM shoplens.{view} LIMIT 100")
        for i, sql in enumerate(sql_blocks(os.path.join(ROOT, "docs/analyst-guide.md"))):
            run(f"analyst guide query {i + 1}", sql)
        for name, sql in panel_queries():
            run(f"dashboard panel {name}", sql)
        for stmt in plan(binary, cluster="shoplens_cluster", retention_days=400):
            run("cluster statement (parse)", f"EXPLAIN AST {stmt}")
        access = open(os.path.join(ROOT, "deploy/clickhouse/access.sql"), encoding="utf-8").read()
        access = "\n".join(l for l in access.splitlines() if not l.startswith("--"))
        for stmt in (x.strip() for x in access.split(";")):
            if stmt:
                run("access.sql statement (parse)", f"EXPLAIN AST {stmt}")
        print(
            f"current ClickHouse {version}: {checked} statements ok "
            f"({len(tables)} tables with random rows, {len(views)} views)"
        )


if __name__ == "__main__":
    main()
