# Driftline services image: `driftline worker`, `driftline api` (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
# the thin SDK is a distribution of its own, which the platform depends on
COPY sdk sdk
COPY driftline driftline
COPY launch launch
COPY streams streams
COPY detectors detectors
COPY alarms alarms
COPY api api
COPY retrainer retrainer
# CPU build of torch: the services never need CUDA
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu ./sdk .
USER nobody
ENTRYPOINT ["driftline"]
