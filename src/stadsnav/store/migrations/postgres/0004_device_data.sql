-- The device registry's own records: how an uplink finds its device and what the device feeds.
CREATE TABLE devices (
    tenant TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    device_id TEXT NOT NULL,
    model TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    target_id TEXT,
    target_type TEXT,
    settings JSONB NOT NULL,
    lon DOUBLE PRECISION,
    lat DOUBLE PRECISION,
    secret_hash TEXT,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE UNIQUE INDEX devices_device_id ON devices (tenant, device_id);

-- Uplinks already stored: a duplicate (same device, frame counter and payload) is stored once.
CREATE TABLE uplinks (
    tenant TEXT NOT NULL,
    device TEXT NOT NULL,
    f_cnt BIGINT NOT NULL,
    digest TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (tenant, device, f_cnt, digest)
);

-- The temporal store: every attribute instance device data wrote, as it was observed.
CREATE TABLE history (
    tenant TEXT NOT NULL,
    entity_id TEXT COLLATE "C" NOT NULL,
    attr TEXT COLLATE "C" NOT NULL,
    dataset_id TEXT NOT NULL,
    observed_at TEXT COLLATE "C" NOT NULL,
    instance JSONB NOT NULL,
    PRIMARY KEY (tenant, entity_id, attr, dataset_id, observed_at)
);

-- Device data that could not be stored, with the reason and the raw bytes, for a replay.
CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    received_at TEXT NOT NULL,
    transport TEXT NOT NULL,
    network TEXT NOT NULL,
    event TEXT,
    source TEXT NOT NULL,
    device TEXT,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    body BYTEA NOT NULL,
    replayed_at TEXT,
    outcome TEXT
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant, id);
