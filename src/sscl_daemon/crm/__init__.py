"""CRM writers: one module per CRM, all speaking the protocol in ``base``."""
