-- Users of shoplens on ClickHouse with SQL-driven access control (20.5 and
-- later; docker-compose runs this file at the server's first start).
-- Run it as an administrator; change the passwords first.
--
--   shoplens_writer   the pipeline: INSERT into the database, SELECT only the
--                     schema version, its own checkpoints and the erasure
--                     requests; no DDL (`shoplens migrate` runs as an
--                     administrator, the pipeline with migrate_on_start=false).
--                     For erasure (`shoplens forget`) it also counts and
--                     deletes (lightweight DELETE) a person's rows of the four
--                     per-person tables.
--   shoplens_analyst  analysts and Grafana: SELECT only (readonly = 2 lets
--                     tools set per-query settings such as max_execution_time).
--
-- Grants name the database `shoplens`; they may be given before it exists.

CREATE ROLE IF NOT EXISTS shoplens_writer_role;
GRANT INSERT ON shoplens.* TO shoplens_writer_role;
GRANT SELECT ON shoplens.schema_migrations TO shoplens_writer_role;
GRANT SELECT ON shoplens.checkpoints TO shoplens_writer_role;
GRANT SELECT ON shoplens.erasure_requests TO shoplens_writer_role;
GRANT SELECT ON shoplens.erasure_audit TO shoplens_writer_role;
GRANT SELECT, ALTER DELETE ON shoplens.sessions TO shoplens_writer_role;
GRANT SELECT, ALTER DELETE ON shoplens.carts TO shoplens_writer_role;
GRANT SELECT, ALTER DELETE ON shoplens.customers TO shoplens_writer_role;
GRANT SELECT, ALTER DELETE ON shoplens.orders TO shoplens_writer_role;

CREATE ROLE IF NOT EXISTS shoplens_analyst_role;
GRANT SELECT ON shoplens.* TO shoplens_analyst_role;

CREATE USER IF NOT EXISTS shoplens_writer
    IDENTIFIED WITH sha256_password BY 'change-me-writer'
    DEFAULT ROLE shoplens_writer_role;
GRANT shoplens_writer_role TO shoplens_writer;

CREATE USER IF NOT EXISTS shoplens_analyst
    IDENTIFIED WITH sha256_password BY 'change-me-analyst'
    DEFAULT ROLE shoplens_analyst_role
    SETTINGS readonly = 2;
GRANT shoplens_analyst_role TO shoplens_analyst;
