"""HTTP and WebSocket surfaces: REST API, the voice WebSocket, the web page."""
