/* QEMU TCG plugin: counts the guest instructions executed between two marker addresses.
 *
 *   -plugin libtinyc_insn_count.so,begin=0x1234,end=0x5678 -d plugin -D log.txt
 *
 * Every executed instruction adds 1 to a counter (inline op, exact). Reaching `begin` snapshots
 * the counter, reaching `end` adds the difference to the window total. At exit the plugin logs
 *   tinyc-insns windows=<n> count=<instructions in windows> total=<all instructions>
 * The window holds the instructions from `begin` (included) to `end` (excluded) when QEMU runs a
 * callback before the inline op of the same instruction, as QEMU 7.2 does; the count is exact and
 * repeatable either way. Built by tinyc against the qemu-plugin.h of the installed QEMU (plugin
 * API version 1, QEMU 4.2 to 8.x); single vCPU machines only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t begin_addr = UINT64_MAX;
static uint64_t end_addr = UINT64_MAX;
static uint64_t total;    /* all executed instructions */
static uint64_t snapshot; /* total at the last begin */
static uint64_t counted;  /* instructions inside windows */
static uint64_t windows;
static int inside;

static void on_begin(unsigned int vcpu, void *udata)
{
  (void)vcpu;
  (void)udata;
  snapshot = total;
  inside = 1;
}

static void on_end(unsigned int vcpu, void *udata)
{
  (void)vcpu;
  (void)udata;
  if (inside) {
    counted += total - snapshot;
    windows++;
    inside = 0;
  }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
  size_t i;
  size_t n = qemu_plugin_tb_n_insns(tb);
  (void)id;
  for (i = 0; i < n; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t pc = qemu_plugin_insn_vaddr(insn);
    if (pc == begin_addr) {
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    if (pc == end_addr) {
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
  }
}

static void on_plugin_exit(qemu_plugin_id_t id, void *udata)
{
  char line[160];
  (void)id;
  (void)udata;
  snprintf(line, sizeof line, "tinyc-insns windows=%" PRIu64 " count=%" PRIu64 " total=%" PRIu64 "\n",
           windows, counted, total);
  qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
  int i;
  if (info->system_emulation && info->system.smp_vcpus != 1) {
    fprintf(stderr, "tinyc-insns: needs a single vCPU\n");
    return -1;
  }
  for (i = 0; i < argc; i++) {
    if (strncmp(argv[i], "begin=", 6) == 0) {
      begin_addr = strtoull(argv[i] + 6, NULL, 0);
    } else if (strncmp(argv[i], "end=", 4) == 0) {
      end_addr = strtoull(argv[i] + 4, NULL, 0);
    } else {
      fprintf(stderr, "tinyc-insns: unknown argument %s\n", argv[i]);
      return -1;
    }
  }
  if (begin_addr == UINT64_MAX || end_addr == UINT64_MAX) {
    fprintf(stderr, "tinyc-insns: needs begin=ADDR,end=ADDR\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
  return 0;
}
