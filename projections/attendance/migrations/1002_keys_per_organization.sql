-- Every record is keyed within its organization: two organizations may use the same session,
-- booking, subscription, pass or token id, and a lookup by id alone cannot reach another's record.
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey, ADD PRIMARY KEY (organization_id, session_id);
ALTER TABLE bookings DROP CONSTRAINT bookings_pkey, ADD PRIMARY KEY (organization_id, booking_id);
ALTER TABLE entitlements DROP CONSTRAINT entitlements_pkey, ADD PRIMARY KEY (organization_id, subscription_id);
ALTER TABLE passes DROP CONSTRAINT passes_pkey, ADD PRIMARY KEY (organization_id, pass_id);
ALTER TABLE spent_tokens DROP CONSTRAINT spent_tokens_pkey, ADD PRIMARY KEY (organization_id, nonce);
