-- The admin dashboard counts sign-ins, failures and locks by day: an index by action and time keeps that a
-- range scan per action on a large audit table.
CREATE INDEX audit_events_action_at ON audit_events (action, at);
