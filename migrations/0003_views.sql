-- Views for the questions asked of traces (docs/sql.md shows each with a real run).
--
-- A step id can have several rows in one run: a repaired plan reruns the steps it changed under the same ids. The
-- model calls, tool calls and verdicts of one attempt are the ones recorded between its start and its end, so the
-- views below join on that window rather than on (run_id, step_id) alone.

-- One row per run. Usage is summed from model_calls (the runs columns are only set when a run ends), so a run in
-- progress shows what it has used so far.
CREATE VIEW run_summary AS
    SELECT r.run_id, r.status, r.question, r.started_at, r.finished_at, round(r.latency_ms::numeric, 1) AS latency_ms, r.deadline_s,
           coalesce(s.steps, 0) AS steps, coalesce(s.failed_steps, 0) AS failed_steps,
           coalesce(p.replans, 0) AS replans,
           coalesce(m.model_calls, 0) AS model_calls, coalesce(m.failed_model_calls, 0) AS failed_model_calls,
           coalesce(t.tool_calls, 0) AS tool_calls,
           coalesce(m.input_tokens, 0) AS input_tokens, coalesce(m.output_tokens, 0) AS output_tokens,
           coalesce(m.cached_tokens, 0) AS cached_tokens, coalesce(m.cost, 0) AS cost,
           r.answer ->> 'text' AS answer, r.error_type, r.error
    FROM runs r
    LEFT JOIN LATERAL (
        SELECT count(*) AS steps, count(*) FILTER (WHERE status = 'failed') AS failed_steps
        FROM steps WHERE steps.run_id = r.run_id) s ON true
    LEFT JOIN LATERAL (
        SELECT count(*) AS replans FROM events WHERE events.run_id = r.run_id AND events.type = 'replanned') p ON true
    LEFT JOIN LATERAL (
        SELECT count(*) AS model_calls, count(*) FILTER (WHERE error IS NOT NULL) AS failed_model_calls,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cached_tokens) AS cached_tokens, sum(cost) AS cost
        FROM model_calls WHERE model_calls.run_id = r.run_id) m ON true
    LEFT JOIN LATERAL (
        SELECT count(*) AS tool_calls FROM tool_calls WHERE tool_calls.run_id = r.run_id) t ON true;

-- One row per step attempt: when it ran relative to its run's start, what served it, and what the verifiers said.
CREATE VIEW step_timeline AS
    SELECT s.run_id, s.step_id,
           row_number() OVER (PARTITION BY s.run_id, s.step_id ORDER BY s.started_at) AS attempt,
           s.kind, s.target, s.depends_on, s.status,
           round(extract(epoch FROM s.started_at - r.started_at) * 1000, 1) AS start_ms,
           round(extract(epoch FROM s.finished_at - r.started_at) * 1000, 1) AS end_ms,
           round(s.duration_ms::numeric, 1) AS duration_ms,
           m.experts, coalesce(m.model_calls, 0) AS model_calls,
           coalesce(m.input_tokens, 0) AS input_tokens, coalesce(m.output_tokens, 0) AS output_tokens,
           coalesce(m.cost, 0) AS cost,
           t.tools, coalesce(t.tool_calls, 0) AS tool_calls,
           coalesce(v.verdicts, 0) AS verdicts, coalesce(v.failed_verdicts, 0) AS failed_verdicts,
           v.worst_outcome, v.verdict_summary,
           s.input, s.output, s.error
    FROM steps s
    JOIN runs r USING (run_id)
    LEFT JOIN LATERAL (
        SELECT string_agg(DISTINCT mc.expert, ', ') FILTER (WHERE mc.error IS NULL) AS experts, count(*) AS model_calls,
               sum(mc.input_tokens) AS input_tokens, sum(mc.output_tokens) AS output_tokens, sum(mc.cost) AS cost
        FROM model_calls mc
        WHERE mc.run_id = s.run_id AND mc.step_id = s.step_id AND mc.at BETWEEN s.started_at AND s.finished_at) m ON true
    LEFT JOIN LATERAL (
        SELECT string_agg(DISTINCT tc.tool, ', ') AS tools, count(*) AS tool_calls
        FROM tool_calls tc
        WHERE tc.run_id = s.run_id AND tc.step_id = s.step_id AND tc.at BETWEEN s.started_at AND s.finished_at) t ON true
    LEFT JOIN LATERAL (
        SELECT count(*) AS verdicts, count(*) FILTER (WHERE vd.outcome <> 'pass') AS failed_verdicts,
               -- the policy's order of severity: fail > replan > retry > pass
               (array_agg(vd.outcome ORDER BY array_position(ARRAY['fail', 'replan', 'retry', 'pass'], vd.outcome)))[1] AS worst_outcome,
               string_agg(vd.verifier || ' ' || vd.outcome, ', ' ORDER BY vd.at, vd.verifier) AS verdict_summary
        FROM verdicts vd
        WHERE vd.run_id = s.run_id AND vd.step_id = s.step_id AND vd.at BETWEEN s.started_at AND s.finished_at) v ON true;

-- The columns of 0002's expert_usage, then: how many runs used the expert, the 95th percentile latency, generation
-- speed, and when it was last called.
CREATE OR REPLACE VIEW expert_usage AS
    SELECT expert, backend, provider, request_model, purpose,
           count(*) FILTER (WHERE error IS NULL) AS calls,
           count(*) FILTER (WHERE error IS NOT NULL) AS failed_calls,
           count(*) FILTER (WHERE rerouted_from IS NOT NULL) AS rerouted_calls,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cached_tokens) AS cached_tokens, sum(cost) AS cost,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE error IS NULL) AS p50_latency_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) AS p50_ttft_ms,
           count(DISTINCT run_id) AS runs,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE error IS NULL) AS p95_latency_ms,
           round((sum(output_tokens) FILTER (WHERE error IS NULL)
                  / nullif(sum(latency_ms - coalesce(ttft_ms, 0)) FILTER (WHERE error IS NULL), 0) * 1000)::numeric, 1)
               AS output_tokens_per_s,
           max(at) AS last_call_at
    FROM model_calls GROUP BY expert, backend, provider, request_model, purpose;

-- The same columns as 0001's failed_verdicts, joined to the attempt the verdict was about (not every row of the
-- step id), then the run's question and that attempt's resolved input and output.
CREATE OR REPLACE VIEW failed_verdicts AS
    SELECT v.run_id, v.step_id, s.target, v.verifier, v.outcome, v.reason, v.at,
           r.question, s.input, s.output
    FROM verdicts v
    LEFT JOIN steps s ON s.run_id = v.run_id AND s.step_id = v.step_id AND v.at BETWEEN s.started_at AND s.finished_at
    LEFT JOIN runs r ON r.run_id = v.run_id
    WHERE v.outcome <> 'pass';
