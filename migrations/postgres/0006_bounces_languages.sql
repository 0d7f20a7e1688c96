-- The registrant's side (CONTRACT sections 7 and 9): an address's last hard
-- bounce, and the language a contact reads.

-- Set when the relay refused the address with a 5xx reply or a delivery
-- status notification reported it failed; cleared by a new email, a resend
-- or a validation. A bounced address gets no sweep email.
ALTER TABLE verifications ADD COLUMN bounce_code TEXT;
ALTER TABLE verifications ADD COLUMN bounce_detail TEXT;
ALTER TABLE verifications ADD COLUMN bounced_at TIMESTAMPTZ;
CREATE INDEX verifications_bounced ON verifications (email_key) WHERE bounced_at IS NOT NULL;

-- A language tag (`de`, `pt-BR`); NULL: not given (English).
ALTER TABLE contacts ADD COLUMN language TEXT;
