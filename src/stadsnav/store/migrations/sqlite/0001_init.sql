-- Entities and their indexes. doc holds the attributes in internal (expanded) form as JSON.
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

CREATE TABLE entities (
    pk INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    types TEXT NOT NULL,
    scopes TEXT,
    doc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    expires_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    UNIQUE (tenant, id)
);
CREATE INDEX entities_expires ON entities (expires_at) WHERE expires_at IS NOT NULL;

-- One row per (entity, type): type filters and /types.
CREATE TABLE entity_types (
    tenant TEXT NOT NULL,
    type TEXT NOT NULL,
    entity INTEGER NOT NULL,
    PRIMARY KEY (tenant, type, entity)
) WITHOUT ROWID;
CREATE INDEX entity_types_entity ON entity_types (entity);

-- One row per (entity, attribute): the attrs filter and /attributes.
CREATE TABLE entity_attrs (
    tenant TEXT NOT NULL,
    attr TEXT NOT NULL,
    entity INTEGER NOT NULL,
    kinds TEXT NOT NULL,
    PRIMARY KEY (tenant, attr, entity)
) WITHOUT ROWID;
CREATE INDEX entity_attrs_entity ON entity_attrs (entity);

-- One row per GeoProperty instance; the R*Tree holds its bounding box under the same gid.
CREATE TABLE entity_geo (
    gid INTEGER PRIMARY KEY,
    entity INTEGER NOT NULL,
    attr TEXT NOT NULL,
    geojson TEXT NOT NULL
);
CREATE INDEX entity_geo_entity ON entity_geo (entity);
CREATE INDEX entity_geo_attr ON entity_geo (attr, entity);
CREATE VIRTUAL TABLE entity_geo_box USING rtree (gid, minx, maxx, miny, maxy);
