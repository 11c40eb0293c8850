# rotator operator image. Two stages: install the wheel (no extras: no sandbox, no test tools)
# with the pinned dependency set into a virtualenv, then copy that virtualenv into a clean
# runtime that runs as a non-root user, without pip or setuptools. `make image` builds it with
# buildah (image/build.sh); docs/image.md says how, what it weighs, and how to publish it.

# The official image, pinned by digest (python:3.11.16-slim-bookworm as of 2026-09-01, from
# docker-library/repo-info repos/python/remote/3.11.16-slim-bookworm.md). Where Docker Hub is out
# of reach, image/build.sh passes a local base of the same Debian release and Python minor.
ARG BASE_IMAGE=docker.io/library/python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml setup.py constraints.txt README.md ./
# The dependencies first, in their own layer: a change to the sources alone reuses it.
# ca-bundle: an optional build secret for networks that reach PyPI through a TLS-inspecting
# proxy (image/build.sh passes the host's CA store); without it pip trusts its own bundle.
RUN --mount=type=secret,id=ca-bundle \
    if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python -m venv /opt/rotator \
    && python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > /tmp/dependencies.txt \
    && /opt/rotator/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        -c constraints.txt -r /tmp/dependencies.txt
COPY operator ./operator
RUN --mount=type=secret,id=ca-bundle \
    if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && /opt/rotator/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        --no-deps -c constraints.txt . \
    && /opt/rotator/bin/python -m pip check \
    && /opt/rotator/bin/python -m pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
# The official image ships pip, setuptools and wheel in the system Python: the operator needs
# none of them at run time. The user has a passwd entry because kopf names its identity after
# it (getpass.getuser()): without one the operator dies at start-up.
RUN if python -m pip --version >/dev/null 2>&1; then \
        python -m pip uninstall --yes --disable-pip-version-check pip setuptools wheel; \
    fi \
    && groupadd --gid 10001 rotator \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin rotator
COPY --from=build /opt/rotator /opt/rotator
ENV PATH=/opt/rotator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["rotator"]
CMD ["run", "--all-namespaces"]
