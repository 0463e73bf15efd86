"""The HTTP server: JSON, SSE and OpenAI-compatible routes (`api`, request bodies in `models`),
admission, rate limits and body limits (`jobs`), and the app that mounts the chat page beside
them (`server`)."""
