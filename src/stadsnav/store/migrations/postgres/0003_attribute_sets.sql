-- Which attributes an entity has, kept as one shared attribute set per distinct combination of
-- (attribute, attribute types) instead of one index row per entity and attribute. Entities of one
-- kind (all bins of a sensor model) share one set, so writing an entity adds no attribute index
-- rows at all: entity_attrs was the largest part of a batch write (docs/performance.md).
CREATE TABLE attr_sets (
    id BIGSERIAL PRIMARY KEY,
    -- attribute TAB kinds, one per line, in attribute order: the same text the store computes.
    signature TEXT COLLATE "C" NOT NULL UNIQUE
);

CREATE TABLE attr_set_members (
    attrset BIGINT NOT NULL,
    attr TEXT COLLATE "C" NOT NULL,
    kinds TEXT NOT NULL,
    PRIMARY KEY (attr, attrset)
);
CREATE INDEX attr_set_members_set ON attr_set_members (attrset);

ALTER TABLE entities ADD COLUMN attrset BIGINT NOT NULL DEFAULT 0;

-- Existing entities: one set per distinct signature, then each entity points at its set.
CREATE TEMP TABLE migrate_signatures ON COMMIT DROP AS
SELECT e.pk AS entity,
       coalesce((SELECT string_agg(a.attr || E'\t' || a.kinds, E'\n' ORDER BY a.attr COLLATE "C")
                 FROM entity_attrs a WHERE a.entity = e.pk), '') AS signature
FROM entities e;

INSERT INTO attr_sets (signature) SELECT DISTINCT signature FROM migrate_signatures;

UPDATE entities e SET attrset = s.id
FROM migrate_signatures m JOIN attr_sets s ON s.signature = m.signature
WHERE m.entity = e.pk;

INSERT INTO attr_set_members (attrset, attr, kinds)
SELECT DISTINCT e.attrset, a.attr, a.kinds FROM entity_attrs a JOIN entities e ON e.pk = a.entity;

DROP TABLE entity_attrs;

CREATE INDEX entities_attrset ON entities (attrset);
