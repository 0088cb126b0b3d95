#!/usr/bin/env python3
"""Flash bytes of a firmware ELF by owner: edgernn, the model and its test vectors, the rest.

Usage: code_by_crate.py ELF [--list]

Symbol sizes alone mislead under LTO: most of edgernn is inlined into the firmware's own
functions. So every instruction range of the DWARF line table is attributed through its
inline chain (`addr2line -i`): a range is edgernn's when any frame of the chain is in edgernn
or one of its dependencies (postcard, serde, libm, heapless). Then, to a fixed point, an
out-of-line `core` or compiler-builtins helper (`memcpy`, 64-bit division) and a read-only
object (a lookup table, a string) are edgernn's when every reference to them comes from
edgernn's code: they are there only because edgernn is.
The model blob, its build-time plan and the test vectors are the generated `MODEL`, `PLAN`,
`VECTOR_*`, `DETECT_*` and generation statics. Everything else (start-up, semihosting, the
example's checks, helpers the example uses too) is `other`.

Prints `total model edgernn other` in bytes (`total` = the `text` of `size`: vector table,
code, read-only data; on RISC-V also riscv-rt's `.init.rust` and the unwind tables in
`.eh_frame`); `--list` adds the biggest edgernn items.

Arm ELFs are read with `arm-none-eabi-` binutils. RISC-V ELFs are read with the host's
binutils (their BFD reads any ELF's sections, symbols and DWARF, and demangles Rust as
`arm-none-eabi-` does, so the same names and parsing apply), and disassembled with the
`llvm-objdump` of rustup's llvm-tools component (the host's objdump cannot disassemble RISC-V;
LLVM's `addr2line` and line-table dump, not in llvm-tools, print other names and formats).
"""

import bisect
import os
import re
import subprocess
import sys
from collections import defaultdict

# edgernn's dependencies, by their registry paths (edgernn's own sources are found by path).
DEP_SOURCES = re.compile(r"/(postcard|serde|serde_core|libm|heapless|hash32)-[0-9.]+/")
DATA = re.compile(r"::(MODEL|PLAN|VECTOR_[A-Z_]+|DETECT_[A-Z_]+|GENERATED[A-Z_]*|PROMPT[A-Z_]*|EXPECTED[A-Z_]*)$")
DEPS = re.compile(r"\b(edgernn|postcard|serde|serde_core|libm|heapless)::")
# Out-of-line helpers of the standard library and the compiler that the fixed point may give
# to edgernn (never the firmware's own functions). Without Arm's `__aeabi_` wrappers, RISC-V
# calls the soft-float and memory helpers by their C names (`__addsf3`, `__fixsfsi`, `memset`).
HELPER = re.compile(r"(core::|<core::|compiler_builtins::|__aeabi_|__[a-z0-9]+di|__udiv|__div"
                    r"|__mod|__[a-z]+[sd]f[0-9]$|__(fix|float)[a-z]+$"
                    r"|(memcpy|memmove|memset|memcmp|bcmp)$)")
# ELF `e_machine` values.
EM_ARM = 40
EM_RISCV = 243
# Sections of the flash image (what `size` counts as `text`).
FLASH_SECTIONS = {
    EM_ARM: (".vector_table", ".text", ".rodata"),
    EM_RISCV: (".text", ".init.rust", ".rodata", ".eh_frame"),
}
# Set by `main` from the ELF's machine.
TOOLS = None
MACHINE = None


def run(*args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=True).stdout


# The repository's `src/` (edgernn), from the ELF's path `<repo>/firmware-examples/...`.
CORE_SRC = None


def edgernn_source(path):
    """Whether a source path is edgernn's or one of its dependencies'."""
    return path.startswith(CORE_SRC) or bool(DEP_SOURCES.search(path))


def elf_machine(path):
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        sys.exit(f"{path}: not an ELF file")
    # e_machine: a half-word at offset 18 in the ELF's byte order (EI_DATA: 1 = little).
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def llvm_objdump():
    """The `llvm-objdump` of rustup's llvm-tools component (the toolchain's own LLVM)."""
    sysroot = run("rustc", "--print", "sysroot").strip()
    host = re.search(r"^host: (\S+)$", run("rustc", "-vV"), re.M).group(1)
    return f"{sysroot}/lib/rustlib/{host}/bin/llvm-objdump"


def disassembly(elf):
    """(address, mnemonic, operands) of every instruction in the ELF's code sections."""
    if MACHINE == EM_ARM:
        out = run(TOOLS + "objdump", "-d", "--no-show-raw-insn", elf)
        line_re = re.compile(r"\s+([0-9a-f]+):\s+(\S+)\s*(.*)")
    else:
        out = run(llvm_objdump(), "-d", "--no-show-raw-insn", elf)
        line_re = re.compile(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)")
    for line in out.splitlines():
        m = line_re.match(line)
        if m:
            yield int(m.group(1), 16), m.group(2), m.group(3)


def arm_targets(mnemonic, operands):
    """Addresses an Arm instruction refers to: branch and call targets, literal words."""
    targets = [int(x, 16) for x in re.findall(r"0x([0-9a-f]+)", operands)]
    targets += [int(x, 16) for x in re.findall(r"^([0-9a-f]+) <", operands)]
    if mnemonic == ".word":
        targets += [int(x, 16) for x in re.findall(r"^0x([0-9a-f]+)", operands)]
    return targets


RV_STORES = {"sb", "sh", "sw"}
RV_NO_DEST = RV_STORES | {"j", "jr", "ret", "jal", "jalr", "call", "tail", "nop", "fence",
                          "ecall", "ebreak", "wfi", "mret", "csrw", "csrs", "csrc", "csrwi",
                          "csrsi", "csrci", "unimp"}


def riscv_targets(at, mnemonic, operands, upper):
    """Addresses a RISC-V instruction refers to. Jump and call targets are printed; a data
    address is built in two instructions (`lui`/`auipc` for the upper bits, then an `addi`,
    load or store with the low 12), so `upper` carries each register's pending upper bits
    (and `gp`'s value) from one instruction to the next."""
    ops = [o.strip() for o in operands.split(",")] if operands else []
    targets = [int(x, 16) for x in re.findall(r"\b0x([0-9a-f]+) <", operands)]
    if mnemonic in ("lui", "auipc") and len(ops) == 2:
        value = (int(ops[1], 0) << 12) + (at if mnemonic == "auipc" else 0)
        upper[ops[0]] = value & 0xFFFFFFFF
        return targets
    base = None
    m = re.search(r"(-?(?:0x[0-9a-f]+|\d+))\((\w+)\)", operands)
    if m and m.group(2) in upper:
        base = upper[m.group(2)] + int(m.group(1), 0)
    elif mnemonic == "addi" and len(ops) == 3 and ops[1] in upper:
        base = upper[ops[1]] + int(ops[2], 0)
    if base is not None:
        targets.append(base & 0xFFFFFFFF)
    # Whatever the instruction writes no longer holds pending upper bits (`gp` is fixed).
    if mnemonic in ("jal", "jalr", "call"):
        upper.pop("ra", None)
    if ops and mnemonic not in RV_NO_DEST and not mnemonic.startswith("b") and ops[0] != "gp":
        upper.pop(ops[0], None)
    return targets


def main():
    global CORE_SRC, TOOLS, MACHINE
    elf = sys.argv[1]
    MACHINE = elf_machine(elf)
    if MACHINE not in FLASH_SECTIONS:
        sys.exit(f"{elf}: ELF machine {MACHINE} is neither Arm nor RISC-V")
    TOOLS = "arm-none-eabi-" if MACHINE == EM_ARM else ""
    # Arm code addresses carry the Thumb bit; RISC-V ones are what they say.
    addr_mask = ~1 if MACHINE == EM_ARM else ~0
    CORE_SRC = os.path.abspath(elf).split("/firmware-examples/")[0] + "/src/"
    listing = "--list" in sys.argv
    sections = {}
    for line in run(TOOLS + "objdump", "-h", elf).splitlines():
        f = line.split()
        if len(f) >= 7 and f[0].isdigit():
            sections[f[1]] = (int(f[3], 16), int(f[2], 16))
    # Symbols with sizes, by address (functions and objects).
    syms = []
    global_pointer = None
    for line in run(TOOLS + "nm", "-S", "-C", "--defined-only", elf).splitlines():
        m = re.match(r"([0-9a-f]+) ([0-9a-f]+) ([tTrRdD]) (.*)", line)
        if m:
            syms.append((int(m.group(1), 16) & addr_mask, int(m.group(2), 16), m.group(3),
                         m.group(4)))
        elif line.endswith(" __global_pointer$"):
            global_pointer = int(line.split()[0], 16)
    syms.sort()
    text_start, text_size = sections[".text"]
    # Line-table row starts inside .text.
    rows = set()
    for line in run(TOOLS + "objdump", "--dwarf=decodedline", elf).splitlines():
        m = re.search(r"\s(0x[0-9a-f]+)(\s+\d+)?(\s+x)?\s*$", line)
        if m:
            a = int(m.group(1), 16)
            if text_start <= a < text_start + text_size:
                rows.add(a)
    funcs = [s for s in syms if s[2] in "tT" and s[1] > 0]
    for start, size, _, _ in funcs:
        rows.add(start)
        rows.add(start + size)
    rows = sorted(rows)
    # Inline chains of every row start, one addr2line call.
    out = run(TOOLS + "addr2line", "-e", elf, "-i", "-f", "-C", "-a",
              stdin="".join(f"{a:#x}\n" for a in rows))
    chains = {}
    current = None
    lines = out.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("0x"):
            current = int(lines[i], 16)
            chains[current] = []
            i += 1
            continue
        func, loc = lines[i], lines[i + 1] if i + 1 < len(lines) else "??"
        chains[current].append((func, loc))
        i += 2

    # Byte ranges of code, each with its class and its function symbol.
    func_starts = [f[0] for f in funcs]
    ranges = []  # (start, end, is_edgernn, function index, innermost edgernn frame)
    for a, b in zip(rows, rows[1:]):
        k = bisect.bisect_right(func_starts, a) - 1
        if k < 0 or not (funcs[k][0] <= a < funcs[k][0] + funcs[k][1]):
            continue
        b = min(b, funcs[k][0] + funcs[k][1])
        chain = chains.get(a, [])
        known = [loc for _, loc in chain if not loc.startswith("??")]
        if known:
            ours = any(edgernn_source(loc) for loc in known)
        else:
            ours = bool(DEPS.search(funcs[k][3]))
        # The innermost edgernn frame, for `--list`.
        inner = next((f"{fn}  [{loc.rsplit('/', 2)[-2]}/{loc.rsplit('/', 1)[-1].split(':')[0]}]"
                      for fn, loc in chain if edgernn_source(loc)), funcs[k][3])
        ranges.append((a, b, ours, k, inner))
    range_starts = [r[0] for r in ranges]

    def range_at(addr):
        j = bisect.bisect_right(range_starts, addr) - 1
        return j if j >= 0 and ranges[j][0] <= addr < ranges[j][1] else None

    # References: calls/branches to functions and literal or movw addresses of objects.
    refs = defaultdict(set)  # target symbol start -> referencing range indices
    sym_starts = [s[0] for s in syms]
    func_start_set = set(func_starts)
    upper = {}
    for at, mnemonic, operands in disassembly(elf):
        if MACHINE == EM_ARM:
            targets = arm_targets(mnemonic, operands)
        else:
            # Upper bits pending at the end of one function are not the next one's.
            if at in func_start_set:
                upper.clear()
            if global_pointer is not None:
                upper["gp"] = global_pointer
            targets = riscv_targets(at, mnemonic, operands, upper)
        j = range_at(at)
        if j is None:
            continue
        for t in targets:
            k = bisect.bisect_right(sym_starts, t & addr_mask) - 1
            if k >= 0 and syms[k][0] <= (t & addr_mask) < syms[k][0] + max(syms[k][1], 1):
                refs[syms[k][0]].add(j)

    # Fixed point: a helper function referenced only from edgernn's code is edgernn's.
    by_func = defaultdict(list)
    for j, r in enumerate(ranges):
        by_func[r[3]].append(j)
    changed = True
    while changed:
        changed = False
        for fi, (start, _, _, name) in enumerate(funcs):
            own = by_func[fi]
            if not HELPER.match(name) or all(ranges[j][2] for j in own):
                continue
            callers = [j for j in refs.get(start, ()) if ranges[j][3] != fi]
            if callers and all(ranges[j][2] for j in callers):
                for j in own:
                    ranges[j] = ranges[j][:2] + (True,) + ranges[j][3:]
                changed = True

    total = sum(size for name, (addr, size) in sections.items()
                if name in FLASH_SECTIONS[MACHINE])
    edgernn = sum(r[1] - r[0] for r in ranges if r[2])
    items = defaultdict(int)
    for r in ranges:
        if r[2]:
            items[r[4]] += r[1] - r[0]
    model = 0
    ro_start, ro_size = sections.get(".rodata", (0, 0))
    for start, size, kind, name in syms:
        if not (ro_start <= start < ro_start + ro_size) or size == 0:
            continue
        if DATA.search(name):
            model += size
        elif DEPS.search(name) or (refs.get(start) and all(ranges[j][2] for j in refs[start])):
            edgernn += size
            items[name] += size
    print(total, model, edgernn, total - model - edgernn)
    if listing:
        for name, size in sorted(items.items(), key=lambda kv: -kv[1])[:60]:
            print(f"{size:8d}  {name[:150]}", file=sys.stderr)


if __name__ == "__main__":
    main()
