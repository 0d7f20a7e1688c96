-- The last sweep that finished (CONTRACT section 10, `stats` LastSweep): one
-- row, replaced by every sweep that sends (dry runs write nothing).
CREATE TABLE last_sweep (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    finished_at TEXT NOT NULL,
    summary     TEXT NOT NULL   -- the summary's JSON, as `sweep` prints it
);
