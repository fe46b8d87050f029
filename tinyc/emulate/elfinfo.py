"""What a firmware ELF occupies (flash, RAM, arena, stack) and where its symbols are."""

from __future__ import annotations

from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from tinyc.errors import TinycError

#: sections the tinyc linker scripts reserve in RAM (NOLOAD) and report on their own
_ARENA = ".tinyc_arena"
_STACK = ".stack"


def _open(elf: str | Path) -> ELFFile:
    try:
        return ELFFile(open(elf, "rb"))  # noqa: SIM115 - closed by the callers below
    except FileNotFoundError:
        raise TinycError(f"{elf}: no such file") from None
    except Exception as e:  # elftools raises its own error types for non-ELF files
        raise TinycError(f"{elf}: not an ELF file ({e})") from None


def elf_sizes(elf: str | Path) -> dict[str, int]:
    """Bytes per category: ``text`` (code, vectors), ``rodata`` (constants, weights), ``data``
    (initialised variables: in flash and in RAM), ``bss``, ``arena`` (``.tinyc_arena``), ``stack``
    (reserved), and the totals ``flash = text + rodata + data`` and
    ``ram = data + bss + arena + stack``."""
    sizes = dict.fromkeys(("text", "rodata", "data", "bss", "arena", "stack"), 0)
    e = _open(elf)
    try:
        for s in e.iter_sections():
            flags = s["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or s["sh_size"] == 0:
                continue
            size = s["sh_size"]
            if s.name == _ARENA:
                sizes["arena"] += size
            elif s.name == _STACK:
                sizes["stack"] += size
            elif flags & SH_FLAGS.SHF_EXECINSTR:
                sizes["text"] += size
            elif not flags & SH_FLAGS.SHF_WRITE:
                sizes["rodata"] += size
            elif s["sh_type"] == "SHT_NOBITS":
                sizes["bss"] += size
            else:
                sizes["data"] += size
    finally:
        e.stream.close()
    sizes["flash"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["ram"] = sizes["data"] + sizes["bss"] + sizes["arena"] + sizes["stack"]
    return sizes


def elf_symbol(elf: str | Path, name: str) -> int:
    """Address of symbol ``name`` (the Thumb bit of function addresses cleared)."""
    e = _open(elf)
    try:
        symtab = e.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise TinycError(f"{elf}: no symbol table (was it stripped?)")
        syms = symtab.get_symbol_by_name(name)
        if not syms:
            raise TinycError(f"{elf}: no symbol {name}")
        sym = syms[0]
        addr = sym["st_value"]
        if sym["st_info"]["type"] == "STT_FUNC" and e["e_machine"] == "EM_ARM":
            addr &= ~1
        return addr
    finally:
        e.stream.close()
