/** `iokit-snap [accelerators]`: the accelerator table, or an iokit-snap/1 snapshot with --json. */
import * as fs from 'node:fs';
import { sampleAccelerators, snapshot } from '../../sample';
import { parseCommandArgs, parseDuration, UsageError } from '../args';
import type { Command } from '../command';
import { acceleratorTable, type AcceleratorTableOptions } from '../accelerator-table';
import { openPciNames } from '../pci-names';
import { paint } from '../format';
import { limitLines } from '../notes';
import { errStyle, EXIT, outStyle, write } from '../io';

function pciNamesOption(file: unknown): AcceleratorTableOptions {
  if (typeof file !== 'string') return {};
  if (!fs.existsSync(file)) throw new UsageError(`--pci-ids ${file}: no such file (name a pci.ids list, e.g. /usr/share/misc/pci.ids)`);
  return { pciNames: openPciNames([file]) };
}

export const acceleratorsCommand: Command = {
  name: 'accelerators',
  summary: 'list the GPUs/accelerators and their state (the default command)',
  usage: `Usage: iokit-snap [accelerators] [--json] [--properties] [--sys-root DIR] [--pci-ids FILE]

Lists the accelerators: on macOS the IORegistry services conforming to IOAccelerator,
on Linux the PCI display/3D/processing-accelerator devices (NVIDIA via NVML when present).

SVC-BUSY is the IOService busy state (registration, matching or termination in
progress) and the accumulated time it was busy: it is NOT GPU load. UTIL is the
driver's own utilization figure (device/renderer/tiler % on Apple GPUs).
On Linux the table shows each PCI device's driver, node, model (from NVML, amdgpu, or
the system's pci.ids), power state, VRAM in use/total, utilization and health.

Options:
  --json          print an iokit-snap/1 snapshot (accelerators only) instead of a table
  --properties    include each device's raw property tree (with --json)
  --sys-root DIR  Linux: read DIR instead of /sys (fixture trees)
  --pci-ids FILE  Linux: PCI names from FILE (default: the system's pci.ids, when present)
  --timeout DUR   give up on a probe after DUR (default 5s)
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      json: { type: 'boolean' },
      properties: { type: 'boolean' },
      'sys-root': { type: 'string' },
      'pci-ids': { type: 'string' },
      timeout: { type: 'string' },
    });
    const timeoutMs = typeof values.timeout === 'string' ? parseDuration(values.timeout, '--timeout') : undefined;
    const sysRoot = values['sys-root'] as string | undefined;
    // Checked in both modes, so that a bad --pci-ids is the same usage error with --json.
    const tableOptions = pciNamesOption(values['pci-ids']);
    if (values.json) {
      const snap = await snapshot({ includeProperties: values.properties === true, sysRoot, timeoutMs });
      await write(io.stdout, JSON.stringify(snap, null, 2) + '\n');
      // A probe that failed whole is in the snapshot's limits; it is the failure the table reports
      // as an error, and gets the same status (the snapshot is printed all the same).
      const failed = snap.limits.find((l) => l.subject === 'accelerators' && l.field === 'accelerators');
      if (failed === undefined) return EXIT.ok;
      await write(io.stderr, `${paint(errStyle(io), 'red', `iokit-snap accelerators: ${failed.code}:`)} ${failed.reason}\n`);
      return EXIT.error;
    }
    // The table reads PCI ids and VRAM totals from the raw properties.
    const sample = await sampleAccelerators({ sysRoot, timeoutMs, includeProperties: true });
    if (sample.accelerators.length === 0) {
      await write(io.stdout, 'No accelerators found on this machine.\n');
    } else {
      await write(io.stdout, acceleratorTable(sample.accelerators, outStyle(io), tableOptions));
    }
    await write(io.stderr, limitLines(sample.limits, errStyle(io)));
    return EXIT.ok;
  },
};
