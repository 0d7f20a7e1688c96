-- contact-verifier schema, Postgres dialect.

-- One verification per email address (lowercased), shared by every contact
-- using it (CONTRACT section 2, first rule).
CREATE TABLE verifications (
    email_key            TEXT PRIMARY KEY NOT NULL,
    email                TEXT NOT NULL,
    status               TEXT NOT NULL
        CHECK (status IN ('NotValidated', 'Pending', 'Validated', 'Expired')),
    key_id               TEXT UNIQUE,
    key_issued_at        TIMESTAMPTZ,
    key_expires_at       TIMESTAMPTZ,
    last_notification_at TIMESTAMPTZ,
    reminder_day_covered BIGINT NOT NULL DEFAULT 0,
    expiry_notice_owed   BOOLEAN NOT NULL DEFAULT FALSE,
    failures             BIGINT NOT NULL DEFAULT 0,
    retry_at             TIMESTAMPTZ,
    claim_owner          TEXT,
    claim_until          TIMESTAMPTZ,
    validated_at         TIMESTAMPTZ,
    -- When the sweep next has something to do here; NULL: nothing.
    due_at               TIMESTAMPTZ,
    version              BIGINT NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX verifications_due ON verifications (due_at, email_key) WHERE due_at IS NOT NULL;

-- Every key ever issued, so a link can be refused with its real reason
-- (expired, replaced, address changed). Holds no token: the link's MAC needs
-- the server secret.
CREATE TABLE verification_keys (
    key_id      TEXT PRIMARY KEY NOT NULL,
    email_key   TEXT NOT NULL,
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    voided_at   TIMESTAMPTZ,
    void_reason TEXT
);
CREATE INDEX verification_keys_email ON verification_keys (email_key);

CREATE TABLE contacts (
    external_id TEXT PRIMARY KEY NOT NULL,
    email       TEXT NOT NULL,
    email_key   TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX contacts_email_key ON contacts (email_key);

CREATE TABLE domains (
    name                TEXT PRIMARY KEY NOT NULL,
    contact_external_id TEXT NOT NULL REFERENCES contacts (external_id),
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX domains_contact ON domains (contact_external_id);

CREATE TABLE operations (
    id              TEXT PRIMARY KEY NOT NULL,
    domain_name     TEXT NOT NULL,
    type            TEXT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('SUBMITTED', 'IN_PROGRESS', 'ERROR', 'SUCCESSFUL', 'FAILED')),
    status_flag     TEXT,
    message         TEXT,
    submitted_at    TIMESTAMPTZ NOT NULL,
    last_updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX operations_open ON operations (status) WHERE status IN ('SUBMITTED', 'IN_PROGRESS');
CREATE INDEX operations_domain ON operations (domain_name, submitted_at);

-- One row per email attempt (Lightsail's Operation).
CREATE TABLE notifications (
    id                TEXT PRIMARY KEY NOT NULL,
    email_key         TEXT NOT NULL,
    operation_type    TEXT NOT NULL,
    reason            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('Started', 'Succeeded', 'Failed')),
    is_terminal       BOOLEAN NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    status_changed_at TIMESTAMPTZ NOT NULL,
    error_code        TEXT,
    error_details     TEXT
);
CREATE INDEX notifications_email ON notifications (email_key, created_at);
