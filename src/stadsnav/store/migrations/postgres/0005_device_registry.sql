-- What the registry knows of a device beyond what ingestion needs: its name and district, what it
-- is installed to measure (Smart Data Models controlledProperty), which other organisations use
-- its data and when it was installed.
ALTER TABLE devices
    ADD COLUMN name TEXT,
    ADD COLUMN district TEXT,
    ADD COLUMN controlled_property TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN co_users TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN installed_at TEXT;
-- The co-use check asks for the devices in a small box around a place.
CREATE INDEX devices_place ON devices (tenant, lat, lon);

-- The registry's audit trail: registrations, lifecycle transitions, changes, and duplicates
-- registered anyway with the reason why.
CREATE TABLE device_events (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    device TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    reason TEXT,
    detail JSONB NOT NULL
);
CREATE INDEX device_events_device ON device_events (tenant, device, id);
