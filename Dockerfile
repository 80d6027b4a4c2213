# One image for the four services, the gateway and the development tools; the command picks the process:
#   docker run portail python -m services.invoices
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what runs in production (requirements/app.lock, compiled from app.in); test tools stay out.
COPY requirements/app.lock requirements/app.lock
RUN python -m pip install -r requirements/app.lock

COPY shared shared
COPY services services
COPY gateway gateway
COPY tools tools

# A fixed uid and gid: the Kubernetes manifests run the pods as 10001:10001 (runAsNonRoot needs a number).
RUN groupadd --system --gid 10001 portail \
    && useradd --system --uid 10001 --gid 10001 --home /app portail && chown -R portail:portail /app
USER portail

EXPOSE 8000 8001 8002 8003 8004
# Each compose service and Kubernetes Deployment sets its own command.
CMD ["python", "-m", "gateway"]
