"""The API: commands in, reads out, notices relayed to browsers over SSE."""
