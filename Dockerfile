# chromedb-instance: one container per tenant. Settings come only from the environment (README).
# Build (CPU): docker build -t chromedb-instance .
# Build (GPU): docker build -t chromedb-instance:gpu --build-arg TORCH_INDEX=https://pypi.org/simple \
#                --build-arg SERVE_CONFIG=serve_config.gpu.yaml .
FROM python:3.11-slim-bookworm

# Where torch comes from: the CPU-only wheel by default; PyPI's default index has the CUDA build
# (its CUDA runtime comes as pip packages; the host needs the NVIDIA driver and container toolkit).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# The graph's shape: serve_config.gpu.yaml puts Embedder replicas on GPUs (fractional num_gpus).
ARG SERVE_CONFIG=serve_config.yaml

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    PERSIST_DIR=/data \
    SERVE_CONFIG=${SERVE_CONFIG} \
    MODEL_CACHE_DIR=/app/model-cache

WORKDIR /app

# torch first, from TORCH_INDEX: for the CPU image its CPU wheel (PyPI's default is a multi-GB CUDA build).
COPY requirements.txt ./
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0 \
    && pip install -r requirements.txt

RUN useradd --create-home --uid 10001 tenant \
    && mkdir -p /data \
    && chown tenant:tenant /data

COPY --chown=10001:10001 app.py serve_config.yaml serve_config.gpu.yaml serve_config.cluster.yaml ./
COPY --chown=10001:10001 deployments ./deployments
COPY --chown=10001:10001 chromedb_client ./chromedb_client
COPY --chown=10001:10001 console ./console
COPY --chown=10001:10001 docker ./docker

USER 10001
# The ONNX export of the model, made once here: replicas start without exporting (or importing torch).
RUN python -m deployments.embedding.onnx_export
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz/', timeout=4).status != 200)"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
