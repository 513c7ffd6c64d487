-- The temporal store grows what the temporal API needs: an id per instance (for correcting or
-- deleting one), its createdAt and modifiedAt (timeproperty), the numeric value apart (for
-- aggregation), and a key that reads one attribute's instances in time order.
CREATE TABLE history_0006 (
    tenant TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    attr TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    num REAL,
    instance TEXT NOT NULL,
    PRIMARY KEY (tenant, entity_id, attr, observed_at, dataset_id)
) WITHOUT ROWID;
INSERT INTO history_0006
SELECT tenant, entity_id, attr, observed_at, dataset_id,
       'urn:ngsi-ld:Instance:' || lower(hex(randomblob(16))),
       coalesce(json_extract(instance, '$.createdAt'), observed_at),
       coalesce(json_extract(instance, '$.modifiedAt'), observed_at),
       CASE WHEN json_type(instance, '$.value') IN ('integer', 'real')
            THEN json_extract(instance, '$.value') END,
       instance
FROM history;
DROP TABLE history;
ALTER TABLE history_0006 RENAME TO history;

-- Every entity with history, with its type: what temporal queries list and filter by type,
-- also once the entity itself is deleted.
CREATE TABLE history_entities (
    tenant TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    PRIMARY KEY (tenant, entity_id)
) WITHOUT ROWID;
CREATE INDEX history_entities_type ON history_entities (tenant, entity_type, entity_id);
INSERT INTO history_entities
SELECT DISTINCT h.tenant, h.entity_id,
       coalesce((SELECT json_extract(e.types, '$[0]') FROM entities e
                 WHERE e.tenant = h.tenant AND e.id = h.entity_id), '')
FROM history h;
