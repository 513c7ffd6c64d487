-- What the registry knows of a device beyond what ingestion needs: its name and district, what it
-- is installed to measure (Smart Data Models controlledProperty, a JSON array), which other
-- organisations use its data (a JSON array) and when it was installed.
ALTER TABLE devices ADD COLUMN name TEXT;
ALTER TABLE devices ADD COLUMN district TEXT;
ALTER TABLE devices ADD COLUMN controlled_property TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN co_users TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN installed_at TEXT;
-- The co-use check asks for the devices in a small box around a place.
CREATE INDEX devices_place ON devices (tenant, lat, lon);

-- The registry's audit trail: registrations, lifecycle transitions, changes, and duplicates
-- registered anyway with the reason why.
CREATE TABLE device_events (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    device TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    reason TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX device_events_device ON device_events (tenant, device, id);
