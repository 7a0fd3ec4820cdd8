# The one image every mlqueue service runs: workers, beat, Flower, the HTTP API and the
# migrate step.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MLQ_ARTIFACTS_DIR=/artifacts \
    MLQ_HOME=/var/lib/mlq

RUN useradd --create-home --uid 1000 mlq \
    && mkdir -p /artifacts /var/lib/mlq \
    && chown mlq:mlq /artifacts /var/lib/mlq
WORKDIR /app
COPY --chown=mlq:mlq pyproject.toml README.md celeryconfig.py ./
COPY --chown=mlq:mlq shared ./shared
COPY --chown=mlq:mlq producer ./producer
COPY --chown=mlq:mlq workers ./workers
COPY --chown=mlq:mlq data ./data
# Editable, so the committed training data stays where the code looks for it. Every
# extra: the worker's machine-learning stack, the API's server, the A/B plots.
RUN pip install -e '.[all]'
USER mlq
CMD ["mlq", "--help"]
