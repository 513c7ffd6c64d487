-- PostgreSQL's migration 8 puts the number in the history key's index for index-only
-- aggregation. SQLite's history is a WITHOUT ROWID table: its key already holds every column,
-- so nothing changes here (the file keeps the two backends' migration numbers in step).
SELECT 1;
