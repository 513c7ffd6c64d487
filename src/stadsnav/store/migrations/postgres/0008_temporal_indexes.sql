-- Aggregation reads one attribute's numbers over a time range: with the number in the key's
-- index (INCLUDE), that is an index-only scan, not a visit to every row's page. The key itself
-- is unchanged (ON CONFLICT still names it); only what the index carries grows.
ALTER TABLE history DROP CONSTRAINT history_pkey;
ALTER TABLE history ADD CONSTRAINT history_pkey
    PRIMARY KEY (tenant, entity_id, attr, observed_at, dataset_id) INCLUDE (num);
