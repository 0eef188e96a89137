"""Transports carry a call's audio and events between a peer and a VoiceSession."""
