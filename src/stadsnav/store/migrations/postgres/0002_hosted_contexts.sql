-- @context documents clients asked the broker to host (POST /jsonldContexts).
CREATE TABLE hosted_contexts (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    document JSONB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
