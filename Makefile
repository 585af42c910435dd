# Two commands do everything on a fresh Debian machine:
#   make demo   install, then start the app on the embedded models (http://127.0.0.1:7860)
#   make test   install, then run every test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install install-dev system-deps bench models clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-train.txt requirements-dev.txt
	$(PIP) install --quiet -r requirements.txt -r requirements-train.txt -r requirements-dev.txt
	touch $@

# What pip cannot install: ffmpeg (Gradio converts videos for browsers with it) and Chromium (the
# browser test). Installed only when missing.
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

install: system-deps $(VENV)/.installed

install-dev: system-deps $(VENV)/.installed-dev

demo: install
	GRADIO_ANALYTICS_ENABLED=False $(PY) app.py

test: install-dev
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: install
	$(PY) -m deepfake_space bench

# Reproduce the released models from their recipes (train/configs/*.toml; on 2 CPU cores about fifteen hours in
# all, docs/RESULTS.md). One target per model: a recipe's finished stages are skipped and an interrupted one
# resumes from its last checkpoint, so `make models` can be stopped and started again.
DATA ?= ../shared/data/dfdc_faces
RECIPE := $(VENV)/bin/accelerate launch --cpu --num_processes 1 -m train.train --config
RELEASE := $(PY) -m train.release --data $(DATA) --config
MODELS := teacher student-kd student-scratch student-kd-mse student-tiny teacher-pair

models: $(MODELS:%=models/%/model.safetensors)

models/%/model.safetensors: train/configs/%.toml | install-dev
	$(RECIPE) $<
	$(RELEASE) $<

# Students distil from the teacher's stages.
$(filter-out models/teacher/%,$(MODELS:%=models/%/model.safetensors)): models/teacher/model.safetensors

# The teacher's logits averaged with a 160 px self-blended sibling trained from it (train.ensemble).
SIBLING := train/configs/candidates/teacher-sbi-160.toml
models/teacher-pair/model.safetensors: models/teacher/model.safetensors $(SIBLING) | install-dev
	$(RECIPE) $(SIBLING)
	$(PY) -m train.ensemble --member models/teacher --member runs/teacher-sbi-160/sbi/best --out models/teacher-pair
	$(PY) -m train.release --data $(DATA) --name teacher-pair --tta

clean:
	rm -rf $(VENV) .pytest_cache
