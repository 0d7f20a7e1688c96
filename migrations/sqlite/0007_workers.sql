-- Processes that may hold claims (CONTRACT: faults never mail a registrant
-- twice). Each running daemon or sweep beats here every few seconds; a claim
-- past its lease stays its owner's while the owner beats, so a database
-- outage longer than the lease cannot hand a sent email to a second sender
-- before the first records it.
CREATE TABLE workers (
    id      TEXT PRIMARY KEY NOT NULL,
    seen_at TEXT NOT NULL
);
