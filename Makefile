# The two commands of the README, and the rest of the developer loop. Every target runs the
# project's own set-up first, so each works from a fresh clone on Debian 12.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= 2
# make predefines CXX as g++, so `?=` would never pick clang: prefer clang++ unless the caller chose.
ifeq ($(origin CXX),default)
CXX := $(shell command -v clang++ >/dev/null 2>&1 && echo clang++ || echo g++)
endif

.PHONY: setup build demo test asan bench bench-e2e bench-webhooks bench-rss deb clean

setup:
	@bash scripts/setup.sh

$(BUILD)/build.ninja:
	@$(MAKE) --no-print-directory setup
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_CXX_COMPILER=$(CXX)

build: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# A 1,000-row campaign against agentix-sim on loopback, then a summary.
demo: build
	bash scripts/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1 --timeout 600

asan: setup
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_CXX_COMPILER=$(CXX) -DCMAKE_BUILD_TYPE=Asan
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j 1 --timeout 900

bench: build
	$(BUILD)/bench/micro_bench

bench-e2e: build
	bash bench/e2e.sh $(BUILD)

# Webhooks/s with durable recording: synchronous FULL and NORMAL, without and with HMAC (~2 min).
bench-webhooks: build
	bash bench/webhooks.sh $(BUILD)

# Peak RSS for a 1,000,000-row and a 10,000-row campaign at concurrency 1,000 (~18 minutes).
bench-rss: build
	bash bench/rss.sh $(BUILD)

# The Debian package (packaging/packaging.cmake), written to $(BUILD)/dialerd_<version>_<arch>.deb.
deb: build
	cd $(BUILD) && cpack -G DEB

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
