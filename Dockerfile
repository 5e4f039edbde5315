# Driftline services image: `driftline worker`, `driftline api` (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY driftline driftline
COPY launch launch
COPY streams streams
COPY detectors detectors
COPY alarms alarms
COPY api api
COPY retrainer retrainer
# CPU build of torch: the services never need CUDA
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu .
USER nobody
ENTRYPOINT ["driftline"]
