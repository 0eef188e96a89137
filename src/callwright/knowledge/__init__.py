"""Business knowledge for agents: ingestion, stores, hybrid search, grounding."""
