# rotator operator image. Two stages: build a wheel with the pinned dependency set, then install
# it into a slim runtime that runs as a non-root user with a read-only root filesystem.
# Linted by tests/test_dockerfile.py (no Docker engine on the build machines).

FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator ./operator
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels rotator \
    && rm -rf /wheels
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["rotator"]
CMD ["run", "--all-namespaces"]
