-- Evals: one row per eval run (a dataset in one mode on one model) and one per item, linked to the item's trace.
CREATE TABLE eval_runs (
    id          bigserial PRIMARY KEY,
    dataset     text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('direct', 'orchestrated', 'sequential')),
    model       text NOT NULL,
    item_limit  integer,
    concurrency integer NOT NULL,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    config      jsonb NOT NULL DEFAULT '{}',
    summary     jsonb
);
CREATE INDEX eval_runs_dataset ON eval_runs (dataset, mode, started_at DESC);

CREATE TABLE eval_items (
    eval_run_id   bigint NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    item_id       text NOT NULL,
    run_id        uuid,              -- the item's trace: runs.run_id (no foreign key: the trace sink writes it later)
    question      text NOT NULL,
    expected      jsonb,
    predicted     jsonb,
    correct       boolean NOT NULL,
    score_note    text,              -- the scorer's reason when not correct
    status        text NOT NULL,     -- the run's status: finished, failed, cancelled
    latency_ms    double precision,
    model_calls   integer NOT NULL DEFAULT 0,
    input_tokens  integer NOT NULL DEFAULT 0,
    output_tokens integer NOT NULL DEFAULT 0,
    tokens        integer GENERATED ALWAYS AS (input_tokens + output_tokens) STORED,
    cost          double precision NOT NULL DEFAULT 0,
    steps         integer NOT NULL DEFAULT 0,
    error         text,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (eval_run_id, item_id)
);
CREATE INDEX eval_items_run_id ON eval_items (run_id);

-- One row per eval run: accuracy, latency percentiles, tokens and cost.
CREATE VIEW eval_summary AS
    SELECT r.id AS eval_run_id, r.dataset, r.mode, r.model, r.status, r.started_at,
           count(i.item_id) AS items,
           avg(i.correct::int) AS accuracy,
           count(*) FILTER (WHERE i.error IS NOT NULL) AS errors,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY i.latency_ms) AS p50_latency_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY i.latency_ms) AS p95_latency_ms,
           avg(i.tokens) AS avg_tokens,
           avg(i.output_tokens) AS avg_output_tokens,
           avg(i.model_calls) AS avg_model_calls,
           coalesce(sum(i.cost), 0) AS cost,
           count(*) FILTER (WHERE i.error LIKE 'plan_invalid%') AS invalid_plans,
           -- constrained outputs that did not decode (a plan, tool call or answer): the target is none at all
           (SELECT count(*) FROM model_calls m JOIN eval_items j USING (run_id)
            WHERE j.eval_run_id = r.id AND m.error LIKE 'constraint_violated%') AS unparseable_outputs
    FROM eval_runs r LEFT JOIN eval_items i ON i.eval_run_id = r.id
    GROUP BY r.id;

-- Every pair of runs on the same dataset: B's numbers minus A's (a run against its baseline).
CREATE VIEW eval_comparison AS
    SELECT a.eval_run_id AS run_a, b.eval_run_id AS run_b, a.dataset, a.mode AS mode_a, b.mode AS mode_b,
           a.items AS items_a, b.items AS items_b,
           b.accuracy - a.accuracy AS accuracy_delta,
           b.p50_latency_ms - a.p50_latency_ms AS p50_latency_delta_ms,
           b.p95_latency_ms - a.p95_latency_ms AS p95_latency_delta_ms,
           b.avg_tokens - a.avg_tokens AS avg_tokens_delta,
           b.cost - a.cost AS cost_delta
    FROM eval_summary a JOIN eval_summary b ON a.dataset = b.dataset AND a.eval_run_id <> b.eval_run_id;
