-- Which attributes an entity has, kept as one shared attribute set per distinct combination of
-- (attribute, attribute types) instead of one index row per entity and attribute. Entities of one
-- kind (all bins of a sensor model) share one set, so writing an entity adds no attribute index
-- rows at all: entity_attrs was half the cost of a batch write (docs/performance.md).
CREATE TABLE attr_sets (
    id INTEGER PRIMARY KEY,
    -- attribute TAB kinds, one per line, in attribute order: the same text the store computes.
    signature TEXT NOT NULL UNIQUE
);

CREATE TABLE attr_set_members (
    attrset INTEGER NOT NULL,
    attr TEXT NOT NULL,
    kinds TEXT NOT NULL,
    PRIMARY KEY (attr, attrset)
) WITHOUT ROWID;
CREATE INDEX attr_set_members_set ON attr_set_members (attrset);

ALTER TABLE entities ADD COLUMN attrset INTEGER NOT NULL DEFAULT 0;

-- Existing entities: one set per distinct signature, then each entity points at its set.
CREATE TEMP TABLE migrate_signatures AS
SELECT e.pk AS entity,
       coalesce((SELECT group_concat(a.attr || char(9) || a.kinds, char(10))
                 FROM (SELECT attr, kinds FROM entity_attrs WHERE entity = e.pk ORDER BY attr) a),
                '') AS signature
FROM entities e;

INSERT INTO attr_sets (signature) SELECT DISTINCT signature FROM migrate_signatures;

UPDATE entities SET attrset = (
    SELECT s.id FROM migrate_signatures m JOIN attr_sets s ON s.signature = m.signature
    WHERE m.entity = entities.pk
);

INSERT INTO attr_set_members (attrset, attr, kinds)
SELECT DISTINCT e.attrset, a.attr, a.kinds FROM entity_attrs a JOIN entities e ON e.pk = a.entity;

DROP TABLE migrate_signatures;
DROP TABLE entity_attrs;

CREATE INDEX entities_attrset ON entities (attrset);
