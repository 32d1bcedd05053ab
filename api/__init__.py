"""The OpenAI-compatible /v1 API: translation, streaming, the Ollama client."""
