"""The OpenAI surface under /v1: chat, completions, embeddings, models (and Responses)."""
