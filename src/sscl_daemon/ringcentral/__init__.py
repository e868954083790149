"""Everything the daemon says to RingCentral: OAuth, REST, the WebSocket subscription, gaps."""
