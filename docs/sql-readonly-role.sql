-- The read-only role for stepwise's `sql` tool, in plain SQL: what `stepwise sql-role ROLE --url ADMIN_URL` does
-- (app/sqlrole.py). Run it with psql as a superuser, connected to the database the tool will query:
--
--   psql "postgresql://postgres@db.example:5432/company" -v role=stepwise_reader -v schema=public -f docs/sql-readonly-role.sql
--
-- then set STEPWISE_SQL_URL=postgresql://stepwise_reader@db.example:5432/company (add a password with
-- ALTER ROLE stepwise_reader PASSWORD '…' if the server does not trust the role).
-- The role may log in, read the tables of one schema, and nothing else. Running the file again on an existing role
-- brings it back to that state. Pick a new role name: a role that owns tables can always write them.

\set ON_ERROR_STOP on
BEGIN;

-- a login role with every other attribute off; created, or brought back if it exists
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT 20;

-- no membership in any role: pg_execute_server_program, pg_read_server_files, pg_write_server_files and
-- pg_signal_backend (COPY … TO PROGRAM, server files, ending other sessions), pg_read_all_data, a writers' group…
SELECT format('REVOKE %I FROM %I', g.rolname, :'role')
FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE u.rolname = :'role' \gexec

-- connect, use the schema, read its tables; no CREATE on the schema, no TEMPORARY tables granted to the role itself
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
SELECT format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM %I', current_database(), :'role') \gexec
GRANT USAGE ON SCHEMA :"schema" TO :"role";
REVOKE CREATE ON SCHEMA :"schema" FROM :"role";
REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM :"role";
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO :"role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA :"schema" FROM :"role";

-- tables you (the role running this file) create in the schema later are readable too, and only readable
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" REVOKE ALL ON TABLES FROM :"role";
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" GRANT SELECT ON TABLES TO :"role";

-- its sessions read by default, find the schema's tables unqualified, and cannot run for long
SELECT format('ALTER ROLE %I IN DATABASE %I SET search_path = %I', :'role', current_database(), :'schema') \gexec
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = 10000;
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = 10000;

COMMIT;

-- What PUBLIC (every role) holds is the database's own business, shown here for you to decide:
-- * TEMPORARY on each database is granted to PUBLIC by default: the sql tool's queries run in read-only transactions,
--   which cannot create temporary tables; to take it away from everyone:  REVOKE TEMPORARY ON DATABASE … FROM PUBLIC;
-- * CREATE on schema public is no longer granted to PUBLIC since PostgreSQL 15; on older servers run
--   REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- * lo_import/lo_export (server files), pg_read_file, pg_ls_dir and pg_stat_file are not executable by PUBLIC by
--   default (since PostgreSQL 11); if someone granted them, the sql tool refuses to start as this role.
-- * pg_terminate_backend and pg_cancel_backend are executable by PUBLIC, but without pg_signal_backend a role can only
--   end its own sessions, never those of another role (the server's trace connections use another role).
