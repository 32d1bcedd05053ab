"""Anthropic Messages API adapter: pure translation onto Ollama's native /api/chat."""
