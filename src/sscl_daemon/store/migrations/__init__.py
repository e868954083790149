"""Versioned schema files (``NNNN_name.sql``) applied in order by ``store.migrate``."""
