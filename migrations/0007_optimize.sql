-- stepwise optimize: one row per optimization (a workload, an objective, a budget), one per candidate configuration
-- it evaluated, each candidate linked to the eval runs that measured it (its items are eval_items rows like any
-- eval's); the chosen configuration and its held-out runs beside the default's.
CREATE TABLE optimize_runs (
    id             bigserial PRIMARY KEY,
    dataset        text NOT NULL,
    objective      jsonb NOT NULL,             -- limits and weights: max_p50_ms, max_cost_per_item, latency_weight, ...
    budget         integer NOT NULL,
    seed           integer NOT NULL,
    train_items    text[] NOT NULL,            -- item ids the candidates ran on
    heldout_items  text[] NOT NULL,            -- item ids kept for the chosen and the default configuration
    status         text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    chosen_number  integer,                    -- optimize_candidates.number of the chosen configuration
    config         jsonb,                      -- the chosen configuration, as the TOML file holds it
    heldout_eval_run_id         bigint REFERENCES eval_runs (id) ON DELETE SET NULL,
    default_heldout_eval_run_id bigint REFERENCES eval_runs (id) ON DELETE SET NULL,
    out_dir        text                        -- where the config, learned bank, report and PNG were written
);

CREATE TABLE optimize_candidates (
    optimize_run_id bigint NOT NULL REFERENCES optimize_runs (id) ON DELETE CASCADE,
    number          integer NOT NULL,          -- the order evaluated; 0 is the default configuration
    params          jsonb NOT NULL,            -- the switches, as the search saw them
    score           double precision NOT NULL, -- the objective's value (accuracy, less any weighted latency and cost)
    feasible        boolean NOT NULL,          -- within the p50 and cost limits
    eval_run_ids    bigint[] NOT NULL,         -- its eval runs (two when its examples were learned: one per half)
    PRIMARY KEY (optimize_run_id, number)
);

-- Each candidate's numbers over all its eval runs' items, as eval_summary computes them per run.
CREATE VIEW optimize_candidate_scores AS
    SELECT c.optimize_run_id, c.number, c.params, c.score, c.feasible, c.eval_run_ids,
           (c.number = o.chosen_number) AS chosen,
           count(i.item_id) AS items,
           avg(i.correct::int)::float8 AS accuracy,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY i.latency_ms) AS p50_latency_ms,
           (coalesce(sum(i.cost), 0) / greatest(count(i.item_id), 1))::float8 AS cost_per_item
    FROM optimize_candidates c
    JOIN optimize_runs o ON o.id = c.optimize_run_id
    LEFT JOIN eval_items i ON i.eval_run_id = ANY (c.eval_run_ids)
    GROUP BY c.optimize_run_id, c.number, c.params, c.score, c.feasible, c.eval_run_ids, o.chosen_number;

-- The candidates on the accuracy-latency or the accuracy-cost frontier: none other of the same optimization is at
-- least as accurate and at least as fast (cheap), and better in one of the two.
CREATE VIEW optimize_frontier AS
    SELECT * FROM (
    SELECT s.*,
           NOT EXISTS (SELECT 1 FROM optimize_candidate_scores o
                       WHERE o.optimize_run_id = s.optimize_run_id AND o.accuracy >= s.accuracy
                         AND o.p50_latency_ms <= s.p50_latency_ms
                         AND (o.accuracy > s.accuracy OR o.p50_latency_ms < s.p50_latency_ms)) AS on_latency_frontier,
           NOT EXISTS (SELECT 1 FROM optimize_candidate_scores o
                       WHERE o.optimize_run_id = s.optimize_run_id AND o.accuracy >= s.accuracy
                         AND o.cost_per_item <= s.cost_per_item
                         AND (o.accuracy > s.accuracy OR o.cost_per_item < s.cost_per_item)) AS on_cost_frontier
    FROM optimize_candidate_scores s) f
    WHERE on_latency_frontier OR on_cost_frontier;
