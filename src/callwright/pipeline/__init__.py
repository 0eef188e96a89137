"""The real-time voice pipeline: audio in, turn-taking, ASR, LLM, TTS, paced audio out.

It knows nothing of HTTP, databases or any transport: a transport feeds it caller
audio and receives `events.SessionEvent`s and paced agent audio through `SessionOutput`.
"""
