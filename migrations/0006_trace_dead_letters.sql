-- Trace events the sink could not store (a value a column or JSONB refuses): kept as text with the error, so one bad
-- event neither stalls nor drops the rest of its batch. `payload` is the event's JSON (NUL escaped as \u0000), or,
-- when not even JSON can hold it, that JSON with the offending values described. The sink stores a stand-in for the
-- event in `events` (and `runs`), so the run stays readable; this row keeps the original.
CREATE TABLE trace_dead_letters (
    id         bigserial PRIMARY KEY,
    run_id     uuid NOT NULL,
    event_type text NOT NULL,
    payload    text NOT NULL,
    error      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()  -- when it was dead-lettered (the event's own time is in payload)
);
CREATE INDEX trace_dead_letters_run_id ON trace_dead_letters (run_id);
