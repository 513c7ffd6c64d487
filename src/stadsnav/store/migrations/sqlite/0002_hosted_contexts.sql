-- @context documents clients asked the broker to host (POST /jsonldContexts).
CREATE TABLE hosted_contexts (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at REAL NOT NULL
);
