"""Constants of the selflearn integration."""

DOMAIN = "selflearn"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 10700  # `selflearn wyoming` / `selflearn serve --wyoming` in docs/home-assistant.md
TIMEOUT_SECONDS = 10  # one request: connect, transcript, answer (the service answers in milliseconds)
PROGRAM = "selflearn"  # the intent program selflearn's `describe` answers with
RESULT_EVENT = "intent-result"  # how running a turn's intents went, sent back so failures become signals
RECORDED_EVENT = "intent-result-recorded"  # selflearn's acknowledgement of a result
