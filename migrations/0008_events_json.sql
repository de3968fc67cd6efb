-- `events.payload` as json, not jsonb: the trace writes every event and reads one run's events back whole, so
-- jsonb's parse into its binary form on every insert bought nothing a read uses, and it was half the cost of the
-- events COPY (bench/diagnose.py `write`; BENCHMARKS.md, section 3). json keeps the text as written, which msgspec
-- reads back exactly; `payload->'field'` and `->>` work on it as on jsonb. Rewrites the table once.
ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json;
