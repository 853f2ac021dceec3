-- 005_change_ranges: one change row may cover a run of consecutive chunk
-- ids, chunk_id .. chunk_id + n - 1, all of one document. Ingestion logs a
-- document's new chunks as one row instead of one row per chunk (the change
-- log was 7% of the single writer's time); deletes and reindex still write
-- n = 1 rows. Readers (retrieval/docmap.c, the vector index replay in
-- retrieval/store.c) expand the runs.
ALTER TABLE changes ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
