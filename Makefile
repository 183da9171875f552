# changegate: change compliance for Kubernetes.
# `make help` lists the targets; the two that matter first are `demo` and `test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN_DIR = $(shell hack/build-binaries.sh print-dir)
KIND_CLUSTER ?= changegate
export GOTOOLCHAIN := local

##@ First steps

.PHONY: demo
demo: $(VENV)/.installed cluster-binaries ## Start a local control plane and the operator, and show a change going through (Ctrl-C stops all)
	$(PY) -m tests.support.demo

.PHONY: test
test: $(VENV)/.installed cluster-binaries lint verify unit integration ## Install what is needed, then run lint, verify, unit and integration tests

##@ Development

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtual environment with the package and its dev extra

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: cluster-binaries
cluster-binaries: ## Build etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok, helm, Prometheus and Alertmanager from Go modules (cached by version)
	@hack/build-binaries.sh >/dev/null

.PHONY: cluster-up
cluster-up: $(VENV)/.installed cluster-binaries ## Start a local control plane that stays up; prints its KUBECONFIG
	@$(PY) -m tests.support.localcluster up --name changegate-dev

.PHONY: cluster-down
cluster-down: $(VENV)/.installed ## Stop the control plane started by cluster-up
	@$(PY) -m tests.support.localcluster down --name changegate-dev

.PHONY: generate
generate: $(VENV)/.installed ## Write crds/ and the chart's CRD templates from the pydantic models
	$(PY) -m changegate.api.crdgen

.PHONY: verify
verify: $(VENV)/.installed chart-lint chart-rules ## Fail if the committed CRDs or the chart's README are stale, the chart fails helm lint, or promtool finds its alert rules invalid
	$(PY) -m changegate.api.crdgen --check
	@diff -u charts/changegate/README.md <($$(hack/build-binaries.sh helm-docs) $(HELM_DOCS_ARGS) --dry-run) \
	  || { echo "charts/changegate/README.md is out of date: run \`make chart-docs\`" >&2; exit 1; }

.PHONY: lint
lint: $(VENV)/.installed ## ruff, mypy --strict on the package, and the import-linter contracts
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy operator/changegate
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: $(VENV)/.installed ## Format and fix what ruff can
	$(VENV)/bin/ruff format operator tests bench
	$(VENV)/bin/ruff check --fix operator tests bench

.PHONY: unit
unit: $(VENV)/.installed ## Unit tests of the pure core and the API (milliseconds)
	$(VENV)/bin/pytest tests/unit -q

.PHONY: integration
integration: $(VENV)/.installed cluster-binaries ## Integration tests against a real local control plane (or CHANGEGATE_TEST_KUBECONFIG)
	@hack/ensure-haproxy.sh
	@hack/ensure-chromium.sh
	$(VENV)/bin/pytest tests/integration -q

##@ Benchmarks

.PHONY: bench-admission
bench-admission: $(VENV)/.installed cluster-binaries ## Admission figures of one webhook holding 10,000 ChangeRequests, against an allow-all floor (prints, not a test)
	@hack/ensure-tool.sh wrk
	$(PY) -m bench.admission

.PHONY: bench-admission-100k
bench-admission-100k: $(VENV)/.installed cluster-binaries ## The same with 100,000 ChangeRequests, 90,000 of them finished: the webhook's RSS after warm-up (slow to load; prints, not a test)
	@hack/ensure-tool.sh wrk
	$(PY) -m bench.admission --changes 100000 --finished 90000

.PHONY: bench-report
bench-report: $(VENV)/.installed cluster-binaries ## Both reports over a year of 100,000 DeploymentRecords and 100,000 ChangeRequests (slow to load; prints, not a test)
	$(PY) -m bench.report

.PHONY: bench-lifecycle
bench-lifecycle: $(VENV)/.installed cluster-binaries ## Close latency of 100 changes rolled out at once, and the controller's memory (prints, not a test)
	$(PY) -m bench.lifecycle

.PHONY: bench-incidents
bench-incidents: $(VENV)/.installed cluster-binaries ## Alert-to-page latency of 1,000 alerts from 100 services through the intake, lost and duplicate pages, controller memory (prints, not a test)
	$(PY) -m bench.incidents

##@ Docker users

.PHONY: kind-up
kind-up: ## Create a kind cluster (needs Docker) and print how to run the integration tests against it
	kind create cluster --name $(KIND_CLUSTER) --kubeconfig $(CURDIR)/.kind.kubeconfig
	@echo "CHANGEGATE_TEST_KUBECONFIG=$(CURDIR)/.kind.kubeconfig make integration"

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

##@ Chart

CHART_FEATURES := --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true \
	--set metrics.dashboard.enabled=true --set tls.certManager.enabled=true \
	--set quota.enabled=true --set "quota.namespaces={payments-prod}"

.PHONY: chart-lint
chart-lint: cluster-binaries ## helm lint --strict the chart, with its defaults and with every optional feature on
	$(BIN_DIR)/helm lint --strict charts/changegate --kube-version 1.30.0
	$(BIN_DIR)/helm lint --strict charts/changegate --kube-version 1.30.0 $(CHART_FEATURES)

.PHONY: chart-rules
chart-rules: $(VENV)/.installed cluster-binaries ## promtool check rules on the chart's PrometheusRule (its spec is a rule file)
	@rules=$$(mktemp --suffix=.yaml) && trap 'rm -f "$$rules"' EXIT && \
	  $(BIN_DIR)/helm template changegate charts/changegate --show-only templates/prometheusrule.yaml --kube-version 1.30.0 $(CHART_FEATURES) \
	  | $(PY) -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(sys.stdin)["spec"], sys.stdout)' >"$$rules" && \
	  "$$(hack/build-binaries.sh prometheus)/promtool" check rules "$$rules"

.PHONY: chart-docs
# helm-docs fills README.md.gotmpl with a table of values.yaml's `# --` comments, in file order.
HELM_DOCS_ARGS := --chart-search-root charts --template-files README.md.gotmpl --sort-values-order file --log-level warning

chart-docs: ## Write charts/changegate/README.md with helm-docs (built from Go modules, cached) from values.yaml's comments
	$$(hack/build-binaries.sh helm-docs) $(HELM_DOCS_ARGS)

##@ Help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
