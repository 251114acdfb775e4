# tern build. `make` builds tern-vmm and the tests; `make SAN=1` builds the same with
# ASan+UBSan into build-san/; `make CC=clang` builds with clang.
CC ?= gcc
SAN ?= 0
BUILD ?= $(if $(filter 1,$(SAN)),build-san,build)

CFLAGS_BASE := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-O2 -g -fno-strict-aliasing -D_GNU_SOURCE -Isrc -MMD -MP
ifeq ($(SAN),1)
CFLAGS_BASE += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif
CFLAGS += $(CFLAGS_BASE)
LDLIBS += -luring -lpthread -lslirp -lhttp_parser -ljson-c -lz -lsqlite3

# Each program's main.c; everything else goes into libtern.a, which each links.
MAINS := src/vmm/main.c src/monitor/main.c src/daemon/main.c src/cli/main.c
PROGRAMS := tern-vmm tern-monitor ternd tern
LIB_SRC := $(filter-out $(MAINS),$(shell find src -name '*.c' | sort))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(shell find tests/unit -name '*.c' | sort)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)

all: $(addprefix $(BUILD)/,$(PROGRAMS)) $(BUILD)/unit-tests guests

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libtern.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/tern-vmm: $(BUILD)/src/vmm/main.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tern-monitor: $(BUILD)/src/monitor/main.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/ternd: $(BUILD)/src/daemon/main.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tern: $(BUILD)/src/cli/main.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

# Tiny freestanding test guests (see guest/Makefile); always built without sanitizers.
guests:
	$(MAKE) -C guest OUT=$(CURDIR)/build/guest

# libFuzzer harnesses, built with clang (see fuzz/README.md).
fuzz:
	$(MAKE) -C fuzz OUT=$(CURDIR)/build/fuzz
fuzz-check:
	$(MAKE) -C fuzz check OUT=$(CURDIR)/build/fuzz

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h' | grep -v '^include/uapi/')

clean:
	rm -rf build build-san

.PHONY: all guests clean format-check fuzz fuzz-check
-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(MAINS:%.c=$(BUILD)/%.d)
