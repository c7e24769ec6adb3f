-- Check-ins and new bookings read the bookings that still hold at a venue (ending after now).
-- bookings_by_venue orders by start, so that read scanned every booking the venue ever had;
-- by end, only those not yet over (at most `max_days_ahead` of them) are visited.
CREATE INDEX bookings_holding ON bookings (organization_id, venue_id, ends_at)
    WHERE status IN ('booked', 'checked_in');
