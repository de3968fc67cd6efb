-- Experts: which registry backend served each call, calls that failed, and calls taken over from a failed expert.
ALTER TABLE model_calls
    ADD COLUMN backend       text,
    ADD COLUMN error         text,
    ADD COLUMN rerouted_from text;

DROP VIEW expert_usage;
CREATE VIEW expert_usage AS
    SELECT expert, backend, provider, request_model, purpose,
           count(*) FILTER (WHERE error IS NULL) AS calls,
           count(*) FILTER (WHERE error IS NOT NULL) AS failed_calls,
           count(*) FILTER (WHERE rerouted_from IS NOT NULL) AS rerouted_calls,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cached_tokens) AS cached_tokens, sum(cost) AS cost,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE error IS NULL) AS p50_latency_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) AS p50_ttft_ms
    FROM model_calls GROUP BY expert, backend, provider, request_model, purpose;
