# The two commands of the README. Each creates .venv and installs the project when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .expansion/demo

SPARK_STAMP := $(VENV)/.installed-spark

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,postgres]'
	touch $(STAMP)

# The tests also run the Spark engine (local mode, Java 17); the demo stays Spark-free.
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,postgres,spark]'
	touch $(SPARK_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/expansion demo

test: $(SPARK_STAMP)
	bash scripts/test.sh $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .expansion .pytest_cache
