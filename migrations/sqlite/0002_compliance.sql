-- Registrar compliance (CONTRACT sections 7 and 8): suspension deadlines per
-- domain, evidence of every validation, and the outbox of hook events.

-- A domain waits while its registrant's address is not Validated; the
-- deadline is set when it starts waiting and never reset while it waits.
ALTER TABLE domains ADD COLUMN waiting_since TEXT;
ALTER TABLE domains ADD COLUMN suspension_date TEXT;
ALTER TABLE domains ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE domains ADD COLUMN suspended_at TEXT;
CREATE INDEX domains_deadline ON domains (suspension_date)
    WHERE suspension_date IS NOT NULL AND suspended = 0;

-- One row per time an address became Validated; written once, never changed.
CREATE TABLE evidence (
    id            TEXT PRIMARY KEY NOT NULL,
    email_key     TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    external_ids  TEXT NOT NULL,   -- JSON array
    domains       TEXT NOT NULL,   -- JSON array
    validated_at  TEXT NOT NULL,
    method        TEXT NOT NULL CHECK (method IN ('link', 'manual', 'import')),
    key_id        TEXT,
    key_issued_at TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    reason        TEXT,
    by_name       TEXT
);
CREATE INDEX evidence_email ON evidence (email_key, validated_at);
CREATE INDEX evidence_time ON evidence (validated_at, id);

-- Hook events, written in the transaction of the change that caused them
-- and delivered in `seq` order.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    at              TEXT NOT NULL,
    payload         TEXT NOT NULL,  -- the event's JSON, as delivered
    delivered       INTEGER NOT NULL DEFAULT 0,
    delivered_at    TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TEXT,
    claim_owner     TEXT,
    claim_until     TEXT
);
CREATE INDEX events_pending ON events (seq) WHERE delivered = 0;
