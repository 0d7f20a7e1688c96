-- Attempts still `Started` are few (the ones in flight, or left by a killed
-- process); sweeps close the stale ones, and find them through this index.
CREATE INDEX notifications_started ON notifications (created_at) WHERE status = 'Started';
