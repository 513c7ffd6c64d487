-- The temporal store for years of data: partitioned by month of observedAt (the store makes
-- each month's partition before writing to it; a default partition takes anything else, so a
-- write never fails), keyed to read one attribute's instances in time order, with an id per
-- instance, its createdAt and modifiedAt (timeproperty) and the numeric value apart (for
-- aggregation in SQL).
ALTER TABLE history RENAME TO history_0005;
ALTER INDEX history_pkey RENAME TO history_0005_pkey;
CREATE TABLE history (
    tenant TEXT NOT NULL,
    entity_id TEXT COLLATE "C" NOT NULL,
    attr TEXT COLLATE "C" NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL,
    dataset_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    modified_at TIMESTAMPTZ NOT NULL,
    num DOUBLE PRECISION,
    instance JSONB NOT NULL,
    PRIMARY KEY (tenant, entity_id, attr, observed_at, dataset_id)
) PARTITION BY RANGE (observed_at);
CREATE TABLE history_default PARTITION OF history DEFAULT;
DO $$
DECLARE
    month TIMESTAMP;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', observed_at::timestamptz AT TIME ZONE 'UTC')
        FROM history_0005
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF history FOR VALUES FROM (%L) TO (%L)',
            'history_' || to_char(month, 'YYYY_MM'),
            month AT TIME ZONE 'UTC',
            (month + interval '1 month') AT TIME ZONE 'UTC'
        );
    END LOOP;
END
$$;
INSERT INTO history
SELECT tenant, entity_id, attr, observed_at::timestamptz, dataset_id,
       'urn:ngsi-ld:Instance:' || replace(gen_random_uuid()::text, '-', ''),
       coalesce(instance ->> 'createdAt', observed_at)::timestamptz,
       coalesce(instance ->> 'modifiedAt', observed_at)::timestamptz,
       CASE WHEN jsonb_typeof(instance -> 'value') = 'number'
            THEN (instance ->> 'value')::double precision END,
       instance
FROM history_0005;
DROP TABLE history_0005;

-- Every entity with history, with its type: what temporal queries list and filter by type,
-- also once the entity itself is deleted.
CREATE TABLE history_entities (
    tenant TEXT NOT NULL,
    entity_id TEXT COLLATE "C" NOT NULL,
    entity_type TEXT NOT NULL,
    PRIMARY KEY (tenant, entity_id)
);
CREATE INDEX history_entities_type ON history_entities (tenant, entity_type, entity_id);
INSERT INTO history_entities
SELECT DISTINCT ON (h.tenant, h.entity_id) h.tenant, h.entity_id, coalesce(e.types[1], '')
FROM history h LEFT JOIN entities e ON e.tenant = h.tenant AND e.id = h.entity_id
ORDER BY h.tenant, h.entity_id;
