"""Speech and language engines behind small typed interfaces, registered by name."""
