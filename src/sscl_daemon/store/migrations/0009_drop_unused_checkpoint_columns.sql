-- checkpoints.last_event_uuid was written and never read, checkpoints.last_sequence
-- always null: the checkpoint is the low-water mark's event time alone, and the
-- WebSocket recovery point keeps its own sequence (recovery_sequence, 0006).
ALTER TABLE checkpoints DROP COLUMN last_event_uuid, DROP COLUMN last_sequence;
