# Thin wrapper over CMake so that the README's two commands stay one line each.
#   make bench   build goalloc in Release mode and compare it with every installed peer
#   make test    build everything and run the whole ctest suite
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build test bench bench-quick clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

bench:
	bash bench/run.sh

bench-quick:
	bash bench/run.sh --quick

clean:
	rm -rf $(BUILD)
