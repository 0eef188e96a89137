"""Agent definitions: what an agent is, says and runs on, as validated config objects."""
