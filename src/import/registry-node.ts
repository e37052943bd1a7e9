/** One IORegistry entry as a dump shows it: what both readers (text, plist) produce. */
import type { BusyState, Limitation, PropertyValue, ServiceState } from '../types';

export interface RegistryNode {
  name: string;
  location: string | null;
  /** The class ioreg printed; null for a bare property block without an IOClass. */
  className: string | null;
  /** `-i` / IOObjectInheritance, in ioreg's order: IORegistryEntry first, the class itself last (no OSObject). */
  inheritance: string[] | null;
  /** "0x100000478"; null when the dump carries no id. */
  id: string | null;
  serviceState: ServiceState | null;
  busy: BusyState | null;
  /** Whether busy.timeNs came from ioreg's whole-millisecond text (plist gives ns). */
  busyTimeFromMilliseconds: boolean;
  retainCount: number | null;
  /** null when the dump printed no properties for this node (plain `ioreg`, or a node `-c` did not select). */
  properties: Record<string, PropertyValue> | null;
  children: RegistryNode[];
  /** 1-based line of the node in a text dump; null for plist input. */
  line: number | null;
  /** Whether the dump had the node's header line at all (a bare property block has none). */
  hasHeader: boolean;
}

export interface ParsedDump {
  format: 'ioreg-text' | 'ioreg-plist';
  roots: RegistryNode[];
  /** What the reader could not take from the input (ended early, clipped lines). */
  limits: Limitation[];
}

/** IOService state bits (IOKitLibPrivate.h): inactive 0x1, registered 0x2, matched 0x4. */
export function serviceStateFromBits(state: bigint): ServiceState {
  return {
    registered: (state & 2n) !== 0n,
    matched: (state & 4n) !== 0n,
    active: (state & 1n) === 0n,
  };
}

export function* walk(nodes: RegistryNode[]): Generator<RegistryNode> {
  const stack = [...nodes].reverse();
  while (stack.length > 0) {
    const node = stack.pop() as RegistryNode;
    yield node;
    for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
  }
}
