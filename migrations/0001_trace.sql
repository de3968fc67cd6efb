-- The trace: one row per fact, JSONB payloads, timestamps with time zone.
-- Column names for model calls follow OpenTelemetry's GenAI conventions.

CREATE TABLE runs (
    run_id        uuid PRIMARY KEY,
    question      text NOT NULL,
    status        text NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    deadline_s    double precision,
    answer        jsonb,
    error_type    text,
    error         text,
    latency_ms    double precision,
    model_calls   integer NOT NULL DEFAULT 0,
    input_tokens  integer NOT NULL DEFAULT 0,
    output_tokens integer NOT NULL DEFAULT 0,
    cached_tokens integer NOT NULL DEFAULT 0,
    cost          double precision NOT NULL DEFAULT 0
);
CREATE INDEX runs_started_at ON runs (started_at DESC);

-- Every event as emitted, in order: the source GET /v1/runs/{id} folds its report from.
CREATE TABLE events (
    id      bigserial PRIMARY KEY,
    run_id  uuid NOT NULL,
    type    text NOT NULL,
    at      timestamptz NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX events_run_id ON events (run_id, id);

CREATE TABLE steps (
    run_id      uuid NOT NULL,
    step_id     integer NOT NULL,
    kind        text NOT NULL,
    target      text NOT NULL,
    input       jsonb,
    depends_on  integer[] NOT NULL,
    status      text NOT NULL CHECK (status IN ('finished', 'failed')),
    output      jsonb,
    error       text,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    duration_ms double precision NOT NULL
);
CREATE INDEX steps_run_id ON steps (run_id, step_id);

CREATE TABLE model_calls (
    run_id        uuid NOT NULL,
    step_id       integer,
    at            timestamptz NOT NULL,
    purpose       text NOT NULL,
    expert        text NOT NULL,
    operation     text NOT NULL,
    provider      text NOT NULL,
    request_model text NOT NULL,
    input_tokens  integer NOT NULL,
    output_tokens integer NOT NULL,
    cached_tokens integer NOT NULL,
    latency_ms    double precision NOT NULL,
    ttft_ms       double precision,
    cost          double precision NOT NULL,
    finish_reason text
);
CREATE INDEX model_calls_run_id ON model_calls (run_id);

CREATE TABLE tool_calls (
    run_id     uuid NOT NULL,
    step_id    integer NOT NULL,
    at         timestamptz NOT NULL,
    tool       text NOT NULL,
    args       jsonb,
    result     jsonb,
    error      text,
    latency_ms double precision NOT NULL
);
CREATE INDEX tool_calls_run_id ON tool_calls (run_id);

CREATE TABLE verdicts (
    run_id   uuid NOT NULL,
    step_id  integer NOT NULL,
    at       timestamptz NOT NULL,
    verifier text NOT NULL,
    outcome  text NOT NULL CHECK (outcome IN ('pass', 'retry', 'replan', 'fail')),
    reason   text NOT NULL
);
CREATE INDEX verdicts_run_id ON verdicts (run_id);

-- The common questions.
CREATE VIEW slowest_steps AS
    SELECT run_id, step_id, kind, target, duration_ms, status, started_at
    FROM steps ORDER BY duration_ms DESC;

CREATE VIEW expert_usage AS
    SELECT expert, provider, request_model, purpose, count(*) AS calls,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cached_tokens) AS cached_tokens, sum(cost) AS cost,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_latency_ms
    FROM model_calls GROUP BY expert, provider, request_model, purpose;

CREATE VIEW failed_verdicts AS
    SELECT v.run_id, v.step_id, s.target, v.verifier, v.outcome, v.reason, v.at
    FROM verdicts v LEFT JOIN steps s USING (run_id, step_id)
    WHERE v.outcome <> 'pass';
