# zhiku — build, test, run.  `make` builds build/zhiku; `make test` runs the
# unit tests (cmocka) and the integration tests (they drive the real binary);
# `make run` ingests the sample documents and answers an example question.
# `make SANITIZE=address,undefined` builds everything with sanitizers into
# build/san/ (same targets).

CC      ?= cc
CXX     ?= c++
# Debian packages the build and the tests need (see tools/deps.sh).
DEB_PKGS := build-essential pkg-config libsqlite3-dev libfaiss-dev libopenblas-dev \
            liblapack-dev libjansson-dev libssl-dev libcurl4-openssl-dev \
            libmicrohttpd-dev libxml2-dev libuchardet-dev libstemmer-dev \
            libmd4c-dev libcmocka-dev sqlite3 libzip-dev libmupdf-dev libopenjp2-7-dev \
            libjbig2dec0-dev libjpeg-dev libgumbo-dev libmujs-dev libharfbuzz-dev \
            libfreetype-dev python3 curl chromium fonts-wqy-microhei clang libclang-rt-14-dev

BUILD := build
ifneq ($(SANITIZE),)
BUILD := build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# pkg-config flags are computed once the Debian packages are there: the
# generated $(BUILD)/pkg.mk depends on the deps stamp, and make re-reads it.
PKGS     := sqlite3 jansson libxml-2.0 uchardet openssl libcurl md4c libzip libmicrohttpd
ifeq ($(filter clean deps,$(MAKECMDGOALS)),)
-include $(BUILD)/pkg.mk
endif

OPT     ?= -O2 -g
WERROR  ?=
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) $(OPT) $(SANFLAGS) \
           -I. -Icommon -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP -pthread
CXXFLAGS := -std=c++17 -Wall -Wextra $(OPT) $(SANFLAGS) -I. -MMD -MP -fopenmp -pthread
LDLIBS  := $(PKG_LIBS) -lstemmer -lfaiss -fopenmp -lopenblas -llapack -lm -pthread
LDFLAGS := $(SANFLAGS)

# Prefer a system FAISS C API library; otherwise build our small shim that
# implements exactly the C API functions zhiku calls.
FAISS_C_LIB := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libfaiss_c.so \
                 /usr/local/lib/libfaiss_c.so /usr/lib/libfaiss_c.so))
ifneq ($(FAISS_C_LIB),)
LDLIBS := -lfaiss_c $(LDLIBS)
FAISS_SHIM :=
else
FAISS_SHIM := retrieval/faiss_capi.cpp
endif

# ---- sources, per module ------------------------------------------------
COMMON_SRC    := $(wildcard common/*.c)
RETRIEVAL_SRC := $(wildcard retrieval/*.c)
INDEXER_SRC   := $(wildcard indexer/*.c indexer/parse/*.c)
LLM_SRC       := $(wildcard llm/*.c)
SERVER_SRC    := $(wildcard server/*.c server/webhooks/*.c)
CLI_SRC       := $(wildcard cli/*.c)
SCHEMA_SQL    := $(sort $(wildcard schema/*.sql))

LIB_SRC := $(COMMON_SRC) $(RETRIEVAL_SRC) $(INDEXER_SRC) $(LLM_SRC) $(SERVER_SRC)
WEB_FILES := $(sort $(wildcard web/*.html web/*.js web/*.css web/*.svg web/*.png web/*.ico))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/schema_sql.o $(BUILD)/obj/gen/web_files.o \
           $(FAISS_SHIM:%.cpp=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIB     := $(BUILD)/libzhiku.a
BIN     := $(BUILD)/zhiku

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps test unit integration run eval bench clean check-deps
all: $(BUILD)/.deps-ok $(BIN)

# Installs missing Debian packages (idempotent). Called automatically when the
# stamp is missing or the package list changed.
deps:
	@tools/deps.sh $(DEB_PKGS)

$(BUILD)/.deps-ok: Makefile tools/deps.sh
	@mkdir -p $(BUILD)
	@tools/deps.sh --check $(DEB_PKGS) || tools/deps.sh $(DEB_PKGS)
	@touch $@

# Browser-test tooling from npm (playwright-core; the browser is Debian's
# chromium). Without node/npm the browser test reports itself skipped.
$(BUILD)/.npm-ok: tests/browser/package-lock.json
	@mkdir -p $(BUILD)
	@if command -v npm >/dev/null; then cd tests/browser && npm ci --no-audit --no-fund --loglevel=error; fi
	@touch $@

$(BUILD)/pkg.mk: $(BUILD)/.deps-ok
	@echo "PKG_CFLAGS := $$(pkg-config --cflags $(PKGS) mupdf)" > $@.tmp
	@echo "PKG_LIBS := $$(pkg-config --libs $(PKGS)) $$(pkg-config --static --libs mupdf) -lharfbuzz" >> $@.tmp
	@mv $@.tmp $@

$(BIN): $(CLI_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.cpp | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c -o $@ $<

# Migrations are compiled into the binary as a table of (name, sql).
# The lists of embedded files are prerequisites too, so removing a file
# (not only changing one) regenerates the embedded copies.
$(BUILD)/gen/%.list: FORCE
	@mkdir -p $(dir $@)
	@echo "$(if $(filter schema,$*),$(SCHEMA_SQL),$(WEB_FILES))" | cmp -s - $@ || \
		echo "$(if $(filter schema,$*),$(SCHEMA_SQL),$(WEB_FILES))" > $@

.PHONY: FORCE
FORCE:

$(BUILD)/gen/schema_sql.c: $(SCHEMA_SQL) $(BUILD)/gen/schema.list tools/embed_sql.sh
	@mkdir -p $(dir $@)
	tools/embed_sql.sh $(SCHEMA_SQL) > $@

# The web portal is compiled into the binary too.
$(BUILD)/gen/web_files.c: $(WEB_FILES) $(BUILD)/gen/web.list tools/embed_files.sh
	@mkdir -p $(dir $@)
	tools/embed_files.sh web/ $(WEB_FILES) > $@

$(BUILD)/obj/gen/web_files.o: $(BUILD)/gen/web_files.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/gen/schema_sql.o: $(BUILD)/gen/schema_sql.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@.o -c $<
	$(CXX) $(LDFLAGS) -o $@ $@.o $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/tests/%: tests/tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@.o -c $<
	$(CXX) $(LDFLAGS) -o $@ $@.o $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@.o -c $<
	$(CXX) $(LDFLAGS) -o $@ $@.o $(LIB) $(LDLIBS)

# ---- tests ----------------------------------------------------------------
# `make test` runs the suite, then again under ASan+UBSan (CI sets it).
test: all $(UNIT_BIN) $(TOOL_BIN) $(BUILD)/.npm-ok
	@tests/run.sh $(BUILD)
ifeq ($(SANITIZE),)
ifneq ($(ZHIKU_SKIP_SAN),1)
	@$(MAKE) --no-print-directory SANITIZE=address,undefined OPT="-O1 -g" test
endif
endif

unit: all $(UNIT_BIN)
	@tests/run.sh $(BUILD) unit

integration: all $(TOOL_BIN)
	@tests/run.sh $(BUILD) integration

# ---- run, eval, bench -------------------------------------------------------
run: all
	@tools/run.sh $(BIN)

ZHIKU_EVAL_DATA ?= ../shared/data/eval
eval: all $(TOOL_BIN)
	@tools/eval.sh $(BIN) $(ZHIKU_EVAL_DATA)

bench: all $(TOOL_BIN) $(BENCH_BIN)
	@bench/run.sh $(BUILD)

clean:
	rm -rf build


# ---- fuzz -------------------------------------------------------------------
# `make fuzz FUZZ_SECONDS=N` builds the libFuzzer targets fuzz/fuzz_*.c with
# clang (ASan+UBSan; the library is rebuilt with clang into $(BUILD)/fuzz/obj,
# apart from the gcc build), replays fuzz/crashes/<target>/ first, then runs
# each target N seconds on a copy of fuzz/corpus/<target>/. docs/HARDENING.md.
FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 30
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                -I. -Icommon -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP -pthread
FUZZ_CXXFLAGS := -std=c++17 -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -I. -MMD -MP -fopenmp -pthread
# clang's -fopenmp wants libomp; libfaiss.a was built against GCC's libgomp
FUZZ_LDLIBS  := $(subst -fopenmp,-lgomp,$(LDLIBS))
FUZZ_OBJ     := $(LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o) $(BUILD)/fuzz/obj/gen/schema_sql.o \
                $(BUILD)/fuzz/obj/gen/web_files.o $(FAISS_SHIM:%.cpp=$(BUILD)/fuzz/obj/%.o)
FUZZ_LIB     := $(BUILD)/fuzz/libzhiku.a
FUZZ_BINS    := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard fuzz/fuzz_*.c))

.PHONY: fuzz
fuzz: $(FUZZ_BINS)
	@fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(BUILD)/fuzz/obj/%.o: %.c | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(BUILD)/fuzz/obj/%.o: %.cpp | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -c -o $@ $<

$(BUILD)/fuzz/%: fuzz/%.c fuzz/fuzz_util.h $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Ifuzz -c -o $@.o $<
	$(FUZZ_CXX) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $@.o $(FUZZ_LIB) $(FUZZ_LDLIBS)

-include $(shell find $(BUILD)/fuzz -name '*.d' 2>/dev/null)
# ---- end fuzz ---------------------------------------------------------------

-include $(shell find $(BUILD)/obj $(BUILD)/tests $(BUILD)/bench -name '*.d' 2>/dev/null)

# ---- valgrind, soak -----------------------------------------------------------
# `make valgrind` runs every integration test (VG_TESTS=NAME... for some)
# with each zhiku process under memcheck, on a -O1 -g build in build/vg
# (valgrind cannot run ASan builds); tests/valgrind/ci.sh is CI's subset.
# `make soak SOAK_SECONDS=N` (default 600) is the load and soak test of
# bench/soak.sh against $(BUILD)/zhiku. Both: docs/HARDENING.md.
VG_BUILD     := build/vg
VG_TESTS     ?=
SOAK_SECONDS ?= 600
.PHONY: valgrind valgrind-build soak
valgrind-build:
	@$(MAKE) --no-print-directory BUILD=$(VG_BUILD) SANITIZE= OPT="-O1 -g" \
		$(VG_BUILD)/.deps-ok $(VG_BUILD)/zhiku $(TOOL_SRC:tests/tools/%.c=$(VG_BUILD)/tests/%)

valgrind: valgrind-build
	@tests/valgrind/selftest.sh
	@tests/valgrind/run.sh $(VG_BUILD) $(VG_TESTS)

soak: all
	@SOAK_SECONDS=$(SOAK_SECONDS) bench/soak.sh $(BUILD)
