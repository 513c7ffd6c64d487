-- Entities and their indexes. doc holds the attributes in internal (expanded) form as JSONB.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE entities (
    pk BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    types TEXT[] NOT NULL,
    scopes JSONB,
    doc JSONB NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    expires_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    UNIQUE (tenant, id)
-- Room on each page for a new version of its rows: updates that change no indexed column
-- (types, expires_at) stay on the page and touch no index (heap-only tuples).
) WITH (fillfactor = 70);
CREATE INDEX entities_types ON entities USING GIN (types);
CREATE INDEX entities_expires ON entities (expires_at) WHERE expires_at IS NOT NULL;

-- The index tables below have no foreign key: the store writes and deletes their rows together
-- with the entity's, set-based, and per-row referential triggers would halve batch throughput.

-- One row per (entity, attribute): the attrs filter and /attributes.
CREATE TABLE entity_attrs (
    tenant TEXT NOT NULL,
    attr TEXT COLLATE "C" NOT NULL,
    entity BIGINT NOT NULL,
    kinds TEXT NOT NULL,
    PRIMARY KEY (tenant, attr, entity)
);
CREATE INDEX entity_attrs_entity ON entity_attrs (entity);

-- One row per GeoProperty instance.
CREATE TABLE entity_geo (
    gid BIGSERIAL PRIMARY KEY,
    entity BIGINT NOT NULL,
    attr TEXT NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX entity_geo_entity ON entity_geo (entity);
CREATE INDEX entity_geo_geom ON entity_geo USING GIST (geom);
