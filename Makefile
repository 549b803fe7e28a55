# Pagekeeper: `make run` boots the demo kernel, `make test` runs every test.
# Both first run scripts/setup-toolchain.sh, which installs what a fresh
# machine lacks (Debian's Rust 1.96 with library source, lld, QEMU, OVMF)
# and does nothing when all is in place.

SHELL := /bin/bash
# Debian's toolchain under /usr, not the rustup proxies (docs/toolchain.md);
# RUSTC_BOOTSTRAP unlocks -Zbuild-std and #![feature] on this stable compiler.
export PATH := /usr/bin:$(PATH)
export RUSTC_BOOTSTRAP := 1

BOOT ?= uefi
MEMORY ?= 128
# MiB of swap disk for `make run` (0: none).
SWAP ?= 256
# Overcommit mode and ratio the kernel boots with (MODE or MODE:RATIO, as
# Linux's vm.overcommit_memory / vm.overcommit_ratio); empty: 0:50.
OVERCOMMIT ?=
export PAGEKEEPER_OVERCOMMIT := $(OVERCOMMIT)
# Log level the kernel boots with: off, error, warn, info (empty: info), debug, trace.
LOG ?=
export PAGEKEEPER_LOG := $(LOG)
# The memory picture in a QEMU window: 1 on, 0 off, auto: on when DISPLAY is set.
GRAPHICS ?= auto
export GRAPHICS
WINDOW := $(if $(filter 1,$(GRAPHICS)),--window,$(if $(filter auto,$(GRAPHICS)),$(if $(DISPLAY),--window)))
KERNEL_ELF := target/kernel/x86_64-unknown-none/debug/pagekeeper
BOOT_TOOL := target/debug/pagekeeper-boot
BOOT_FLAGS := $(if $(filter bios,$(BOOT)),--bios) --memory $(MEMORY) --swap $(SWAP) --standard-files $(WINDOW)
# The bootloader loads the (position-independent) kernel here (the first
# upper-half slot; the boot log prints it as "kernel image at").
KERNEL_LOAD_OFFSET := 0xffff800000000000

.PHONY: all setup kernel boot-tool run gdb test fuzz bench lint fmt clean

all: kernel boot-tool

setup:
	@scripts/setup-toolchain.sh

kernel: setup
	cd kernel && cargo build

boot-tool: setup
	cargo build -p pagekeeper-boot

## make run [BOOT=bios] [MEMORY=MiB] [SWAP=MiB] [OVERCOMMIT=MODE[:RATIO]] [LOG=level] [GRAPHICS=0|1|auto]: boot the demo kernel, console here (Ctrl-C quits).
run: kernel boot-tool
	$(BOOT_TOOL) $(BOOT_FLAGS) $(KERNEL_ELF)

## make gdb: like run, but QEMU waits for gdb; attach with `gdb -x target/gdbinit`.
gdb: kernel boot-tool
	@printf 'symbol-file -o $(KERNEL_LOAD_OFFSET) $(KERNEL_ELF)\ntarget remote localhost:1234\n' > target/gdbinit
	@echo "QEMU is waiting: in another terminal run  gdb -x target/gdbinit"
	$(BOOT_TOOL) --gdb $(BOOT_FLAGS) $(KERNEL_ELF)

## make test: host unit/property tests and every QEMU boot, one summary at the end.
test: setup
	@scripts/test.sh

## make fuzz [SEED=n] [SECONDS=s] [FIRST_ROUND=r] [FUZZ_MEMORY=mib] [FUZZ_SWAP=mib]: the
## system-call fuzzer for a while (default 1, 60 s of kernel uptime; make test runs it for
## 30 s), from round r (to come back to a failure), on a machine of that size (48 MiB, 64 MiB
## of swap; 0: none); fails on a kernel panic, a hang, an unknown return value, a page of a
## kept hog that reads wrong or a changed footprint.
SEED ?= 1
SECONDS ?= 60
FIRST_ROUND ?= 0
# The fuzz boot's machine: MiB of RAM and of swap disk (0: none).
FUZZ_MEMORY ?= 48
FUZZ_SWAP ?= 64
fuzz: setup
	PK_FUZZ_SEED=$(SEED) PK_FUZZ_SECONDS=$(SECONDS) PK_FUZZ_FIRST_ROUND=$(FIRST_ROUND) \
		PK_FUZZ_MEMORY_MIB=$(FUZZ_MEMORY) PK_FUZZ_SWAP_MIB=$(FUZZ_SWAP) cargo test -p pagekeeper-tests --test qemu -- \
		--nocapture fuzzing_for_a_while_leaves_the_kernel_intact

## make bench: host benchmarks and the swap, file and fault boots, all optimised (the boots' kernels built with
## --release: PK_KERNEL_PROFILE); each prints ratios measured in the same run.
bench: setup
	cargo bench -p pagekeeper-mm --bench frame_alloc
	cargo bench -p pagekeeper-mm --bench reclaim
	PK_KERNEL_PROFILE=release cargo test -p pagekeeper-tests --test qemu -- --ignored --nocapture swap_throughput_against_the_raw_device
	PK_KERNEL_PROFILE=release cargo test -p pagekeeper-tests --test qemu -- --ignored --nocapture file_fault_costs_against_copy_and_demand_zero
	PK_KERNEL_PROFILE=release cargo test -p pagekeeper-tests --test qemu -- --ignored --nocapture fault_syscall_and_switch_costs
	cargo bench -p pagekeeper-heap --features host --bench heap

## make lint: rustfmt and clippy (warnings are errors) on both workspaces.
lint:
	@scripts/setup-toolchain.sh --lint
	cargo fmt --all --check
	cd kernel && cargo fmt --check
	cd user && cargo fmt --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cd kernel && cargo clippy --bins --tests -- -D warnings
	cd user && cargo clippy --release --bins -- -D warnings

fmt:
	cargo fmt --all
	cd kernel && cargo fmt
	cd user && cargo fmt

clean:
	cargo clean
