-- Every notification is keyed within its organization: clients choose notification ids, so two
-- organizations may use the same one, and a lookup by id alone must not reach (or, refused as
-- `notification_exists`, reveal) another organization's. Deliveries, digests and tracking hang
-- off the notification by both columns.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_notification_id_fkey;
ALTER TABLE digests DROP CONSTRAINT digests_digest_id_fkey;
ALTER TABLE tracking DROP CONSTRAINT tracking_notification_id_fkey;
ALTER TABLE tracking_events DROP CONSTRAINT tracking_events_notification_id_fkey;

ALTER TABLE notifications DROP CONSTRAINT notifications_pkey, ADD PRIMARY KEY (organization_id, notification_id);
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey, ADD PRIMARY KEY (organization_id, notification_id),
    ADD FOREIGN KEY (organization_id, notification_id) REFERENCES notifications (organization_id, notification_id);
ALTER TABLE digests DROP CONSTRAINT digests_pkey, ADD PRIMARY KEY (organization_id, digest_id),
    ADD FOREIGN KEY (organization_id, digest_id) REFERENCES notifications (organization_id, notification_id);
ALTER TABLE tracking DROP CONSTRAINT tracking_pkey, ADD PRIMARY KEY (organization_id, notification_id),
    ADD FOREIGN KEY (organization_id, notification_id) REFERENCES notifications (organization_id, notification_id);
-- tracking_events stays keyed by the RecordDeliveryStatus command's id (ours, not the client's).
ALTER TABLE tracking_events
    ADD FOREIGN KEY (organization_id, notification_id) REFERENCES notifications (organization_id, notification_id);

-- The lookups by a digest, a campaign or a notification's events name the organization too.
DROP INDEX notifications_by_digest;
CREATE INDEX notifications_by_digest ON notifications (organization_id, digest_id) WHERE digest_id IS NOT NULL;
DROP INDEX notifications_by_campaign;
CREATE INDEX notifications_by_campaign ON notifications (organization_id, campaign_id) WHERE campaign_id IS NOT NULL;
DROP INDEX notifications_by_transaction;
CREATE INDEX notifications_by_transaction ON notifications (organization_id, recipient_id, transaction_id)
    WHERE transaction_id IS NOT NULL;
DROP INDEX tracking_events_by_notification;
CREATE INDEX tracking_events_by_notification ON tracking_events (organization_id, notification_id, occurred_at);
