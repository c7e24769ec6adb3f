-- A digest is sealed by the record that asks for its sending (`ReleaseNotification`: the delivery
-- worker's when the window has closed, or anyone's "send now"). From that record on nothing joins
-- or leaves it, and the worker sends only sealed digests, so what goes out is what the log
-- collected before the seal — the same for the live process and a rebuild. Digests sent before
-- sealing existed stay unsealed; they no longer wait, so nothing joins them either.
ALTER TABLE digests ADD COLUMN sealed_at timestamptz;
