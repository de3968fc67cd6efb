-- The kind of question an item is (the dev set's arithmetic, comparison, sql, docs, game24) and the part of its
-- dataset it belongs to (dev, heldout): accuracy per kind, and per part, in SQL. NULL for datasets without them.
ALTER TABLE eval_items ADD COLUMN kind text, ADD COLUMN split text;

-- One row per eval run and kind of question.
CREATE VIEW eval_kind_summary AS
    SELECT i.eval_run_id, r.dataset, r.mode, r.model, i.kind,
           count(*) AS items,
           count(*) FILTER (WHERE i.correct) AS correct,
           avg(i.correct::int) AS accuracy,
           count(*) FILTER (WHERE i.error IS NOT NULL) AS errors,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY i.latency_ms) AS p50_latency_ms
    FROM eval_items i JOIN eval_runs r ON r.id = i.eval_run_id
    WHERE i.kind IS NOT NULL
    GROUP BY i.eval_run_id, r.dataset, r.mode, r.model, i.kind;
