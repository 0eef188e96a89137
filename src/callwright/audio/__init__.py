"""Audio primitives shared by every layer: PCM16 framing, resampling, telephony codecs."""
