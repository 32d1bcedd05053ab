# ollama2openai: an OpenAI-compatible gateway for Ollama.
# Build: docker build -t ollama2openai .
# Run:   docker run -p 3000:3000 -v o2o-data:/data -e OLLAMA_URL=http://host.docker.internal:11434 \
#          --add-host host.docker.internal:host-gateway ollama2openai
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

# An unprivileged user owns the data directory; the app code stays root-owned (read-only to it).
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin gateway \
    && mkdir -p /data && chown gateway:gateway /data

COPY . .

# Configured by the same environment variables as a bare `python gateway.py` run (PORT,
# OLLAMA_URL, DATA_DIR, SESSION_SECRET, ADMIN_PASSWORD, LOG_FORMAT, LOG_LEVEL; see the README's
# configuration reference). Only the data location is fixed here; OLLAMA_URL is left unset on
# purpose, because an environment variable beats the admin UI and would pin it.
ENV PORT=3000 \
    DATA_DIR=/data

VOLUME /data
EXPOSE 3000
USER gateway

# No curl in the slim image: probe /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)" || exit 1

# SIGTERM (docker stop) triggers the graceful shutdown; give it more than shutdown_timeout:
#   docker stop -t 40, or stop_grace_period: 40s in compose.
STOPSIGNAL SIGTERM
CMD ["python", "gateway.py"]
