# ward: thin wrapper over CMake. `make run` and `make test` do all set-up.
JOBS     ?= $(shell nproc)
BUILD    ?= build
ASAN     ?= build-asan
FUZZ     ?= build-fuzz
FUZZ_SECONDS ?= 10
WARD_MODEL ?= models/default.gguf
WARD_HOST  ?= 127.0.0.1
WARD_PORT  ?= 8080
CTEST_FLAGS ?= --output-on-failure -j$(JOBS)

.PHONY: all deps build asan fuzz-build fuzz run test test-unit test-asan clean bench

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DWARD_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: deps
	@cmake -S . -B $(ASAN) -DWARD_SANITIZE=ON -DWARD_WERROR=ON -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build $(ASAN) -j$(JOBS)

fuzz-build: deps
	@cmake -S . -B $(FUZZ) -DWARD_FUZZ=ON -DWARD_BUILD_TESTS=OFF -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" >/dev/null
	@cmake --build $(FUZZ) -j$(JOBS)

# Runs every libFuzzer target for FUZZ_SECONDS each over its seed corpus.
fuzz: fuzz-build
	@WARD_FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --test-dir $(FUZZ) -L fuzz $(CTEST_FLAGS)

run: build
	@bash scripts/run.sh

# Release build (gcc), then the same suite under ASan+UBSan (clang), then a
# short fuzz pass. Each stage ends with ctest's summary line.
test: build
	@ctest --test-dir $(BUILD) $(CTEST_FLAGS)
	@$(MAKE) --no-print-directory asan
	@WARD_UNDER_ASAN=1 ctest --test-dir $(ASAN) $(CTEST_FLAGS) -LE no-asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

bench: build
	@bash bench/http.sh

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
