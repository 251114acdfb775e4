# tern build. `make` builds the programs and the tests; `make SAN=1` builds the same with
# ASan+UBSan into build-san/; `make CC=clang` builds with clang; `make install` (below).
CC ?= gcc
SAN ?= 0
BUILD ?= $(if $(filter 1,$(SAN)),build-san,build)

CFLAGS_BASE := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-O2 -g -fno-strict-aliasing -D_GNU_SOURCE -Isrc -MMD -MP
ifeq ($(SAN),1)
CFLAGS_BASE += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif
# Test-only fault hooks (src/jail/test_fault.h); the Debian package builds with TEST_HOOKS=0.
TEST_HOOKS ?= 1
ifeq ($(TEST_HOOKS),1)
CFLAGS_BASE += -DTERN_TEST_HOOKS
endif
# tern-vmm's default seccomp programs are built with it (tools/seccomp_gen.c), not at start.
CFLAGS_BASE += -DTERN_SECCOMP_PREBUILT -I$(BUILD)/gen
CFLAGS += $(CFLAGS_BASE)
LDLIBS += -lseccomp -luring -lpthread -lslirp -lhttp_parser -ljson-c -lz -lzstd -llzma -llz4 -lbz2 -llzo2 -lsqlite3 -lgnutls -lnettle

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
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The seccomp programs: a tool built from the lists writes them into a header (tools/).
SECCOMP_GEN_OBJ := $(BUILD)/src/jail/seccomp_filter.o $(BUILD)/src/jail/seccomp_lists.o \
	$(BUILD)/src/core/util.o
$(BUILD)/seccomp-gen: tools/seccomp_gen.c $(SECCOMP_GEN_OBJ)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ -lseccomp
$(BUILD)/gen/seccomp_bpf.h: $(BUILD)/seccomp-gen
	@mkdir -p $(dir $@)
	$< > $@.tmp && mv $@.tmp $@
$(BUILD)/src/jail/seccomp.o: $(BUILD)/gen/seccomp_bpf.h

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

# The four programs alone (what a package needs; `all` adds the tests and test guests).
programs: $(addprefix $(BUILD)/,$(PROGRAMS))

# `make install [PREFIX=/usr/local] [DESTDIR=]`: tern-vmm and tern in bin; ternd and
# tern-monitor in sbin (ternd runs the tern-monitor beside it and the tern-vmm in ../bin);
# the systemd unit, with its paths made PREFIX's; man pages, docs, bash completion.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/tern
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install
MAN_PAGES := man/tern.1 man/tern-vmm.1 man/ternd.8 man/tern-monitor.8
DOCS := docs/ternd.md docs/ternd-api.yaml docs/api.md docs/api.yaml docs/overlay.md docs/disks.md docs/security.md
# The unit and man pages name /usr/sbin, /usr/share/doc/tern and /lib/systemd/system.
SUBST_PATHS := sed -e 's|/usr/sbin/ternd|$(SBINDIR)/ternd|g' -e 's|/usr/share/doc/tern|$(DOCDIR)|g' \
	-e 's|/lib/systemd/system/ternd|$(SYSTEMDUNITDIR)/ternd|g'

install: programs
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(SYSTEMDUNITDIR)
	$(INSTALL) -m 0755 $(BUILD)/tern-vmm $(BUILD)/tern $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0755 $(BUILD)/ternd $(BUILD)/tern-monitor $(DESTDIR)$(SBINDIR)/
	for m in $(MAN_PAGES); do \
		$(SUBST_PATHS) $$m > $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/} || exit 1; \
		chmod 0644 $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/}; \
	done
	$(SUBST_PATHS) contrib/systemd/ternd.service > $(DESTDIR)$(SYSTEMDUNITDIR)/ternd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/ternd.service
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 contrib/bash-completion/tern $(DESTDIR)$(BASHCOMPDIR)/tern

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,tern-vmm tern) \
		$(addprefix $(DESTDIR)$(SBINDIR)/,ternd tern-monitor) \
		$(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS))) \
		$(DESTDIR)$(SYSTEMDUNITDIR)/ternd.service $(DESTDIR)$(BASHCOMPDIR)/tern
	-rmdir $(DESTDIR)$(DOCDIR)

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h' | grep -v '^include/uapi/')

clean:
	rm -rf build build-san

.PHONY: all programs install uninstall guests clean format-check fuzz fuzz-check
-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(MAINS:%.c=$(BUILD)/%.d)
