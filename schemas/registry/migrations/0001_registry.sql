-- Schema registry storage, in the `registry` schema (search_path).

-- Every distinct schema once; its id is global, shared by every subject that registers it.
CREATE TABLE schemas (
    id          serial      PRIMARY KEY,
    schema_text text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE versions (
    subject    text        NOT NULL,
    version    integer     NOT NULL,
    schema_id  integer     NOT NULL REFERENCES schemas (id),
    deleted    boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX versions_by_schema ON versions (schema_id);

-- Compatibility levels; the empty subject holds the global level.
CREATE TABLE config (
    subject       text PRIMARY KEY,
    compatibility text NOT NULL
);
INSERT INTO config (subject, compatibility) VALUES ('', 'BACKWARD');
