"""The channel-neutral session model and the runtime that turns a call into a VoiceSession."""
