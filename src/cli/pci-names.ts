/**
 * PCI vendor and device names from the system's pci.ids (the PCI ID Project's list, the one
 * lspci reads), for the accelerator table. Read only when present and only when a name is
 * first asked for; a lookup is a search of the file's text, not a parse of all of it.
 */
import * as fs from 'node:fs';

/** Where distributions install pci.ids: Debian/Ubuntu (pciutils, pci.ids), Fedora/Arch (hwdata), older layouts. */
export const PCI_IDS_PATHS: readonly string[] = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids', '/usr/share/pci.ids'];

export interface PciNames {
  /** "NVIDIA Corporation" for "0x10de"; null when unknown or no pci.ids was found. */
  vendor(vendorId: string): string | null;
  /** "GH100[H100 SXM5 80GB]" for ("0x10de", "0x2330"); null when unknown. */
  device(vendorId: string, deviceId: string): string | null;
}

/** "0x10DE" or "10de" → "10de"; null for anything that is not a 16-bit id. */
function normalizeId(id: string): string | null {
  const hex = id.trim().toLowerCase().replace(/^0x/, '');
  return /^[0-9a-f]{1,4}$/.test(hex) ? hex.padStart(4, '0') : null;
}

function lineAt(text: string, start: number): string {
  const end = text.indexOf('\n', start);
  return text.slice(start, end === -1 ? text.length : end).trimEnd();
}

/**
 * Names from the first of `paths` that can be read. pci.ids is a vendor line "10de  NVIDIA
 * Corporation" followed by its device lines "\t2330  GH100[H100 SXM5 80GB]" (and deeper,
 * doubly indented subsystem lines), then the next vendor; the class list comes last.
 */
export function openPciNames(paths: readonly string[] = PCI_IDS_PATHS): PciNames {
  let text: string | null | undefined;
  const load = (): string | null => {
    if (text !== undefined) return text;
    text = null;
    for (const file of paths) {
      try {
        text = '\n' + fs.readFileSync(file, 'utf8');
        break;
      } catch {
        // Not installed there: try the next place; without any, names stay unknown.
      }
    }
    return text;
  };
  /** Where the vendor's line starts and where its block of device lines ends. */
  const vendorBlock = (vendorId: string): { line: number; end: number } | null => {
    const all = load();
    const vendor = normalizeId(vendorId);
    if (all === null || vendor === null) return null;
    const line = all.indexOf(`\n${vendor}  `);
    if (line === -1) return null;
    // The block ends at the next line that is neither indented nor a comment.
    const next = /\n[^\t#\n]/g;
    next.lastIndex = line + 1;
    const found = next.exec(all);
    return { line: line + 1, end: found ? found.index : all.length };
  };
  return {
    vendor(vendorId) {
      const block = vendorBlock(vendorId);
      return block ? lineAt(text as string, block.line).slice(6) || null : null;
    },
    device(vendorId, deviceId) {
      const block = vendorBlock(vendorId);
      const device = normalizeId(deviceId);
      if (!block || device === null) return null;
      const at = (text as string).indexOf(`\n\t${device}  `, block.line);
      return at !== -1 && at < block.end ? lineAt(text as string, at + 1).slice(7) || null : null;
    },
  };
}

/** The short name pci.ids gives in brackets at the end ("Navi 31 [Radeon RX 7900 XT/7900 XTX]" → "Radeon RX 7900 XT/7900 XTX"). */
export function bracketedName(name: string): string {
  const match = /\[([^\]]+)\]$/.exec(name);
  return match ? match[1] : name;
}

const COMPANY_SUFFIX = /\s+(corporation|corp\.?|inc\.?|incorporated|co\.?|ltd\.?|limited|company|technology|technologies)$/i;

/** A maker's name short enough for a table: "Moore Threads Technology Co.,Ltd" → "Moore Threads", "NVIDIA Corporation" → "NVIDIA". */
export function shortVendorName(name: string): string {
  const bracketed = /\[([^\]]+)\]$/.exec(name);
  if (bracketed) return bracketed[1];
  let short = name.split(',')[0].trim();
  while (COMPANY_SUFFIX.test(short)) short = short.replace(COMPANY_SUFFIX, '');
  return short;
}
