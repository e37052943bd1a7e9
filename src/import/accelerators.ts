/**
 * Which registry entries of a dump are accelerators, and their class chain.
 *
 * The live reader asks IOKit for the services that conform to IOAccelerator
 * (class conformance, not name). A dump can answer the same question only when
 * it carries the inheritance (`ioreg -i`, or IOObjectInheritance in `ioreg -a -i`):
 * then the rule is exactly that, the chain contains IOAccelerator.
 *
 * Without inheritance, an entry is an accelerator when, in this order:
 *   1. its class is one known NOT to be: IOServiceCompatibility (IOKitRegistryCompatibility
 *      publishes a node NAMED IOAccelerator of that class), IOPCIDevice (the GPU's PCI
 *      nub), framebuffers, controllers and user clients (class names containing
 *      Framebuffer, Controller or UserClient) → no;
 *   2. its class is a known IOAccelerator subclass → yes: the family classes IOAccelerator
 *      and IOGPU, Apple's AGXAccelerator* and AGXFamilyAccelerator (all in the `-i` chain
 *      of a real M1 dump), IntelAccelerator, AMDRadeonX<n>_…Accelerator (real Intel and
 *      AMD dumps), nvAccelerator (NVIDIA's driver class);
 *   3. its properties say so: IOMatchCategory = "IOAccelerator" (the matching category
 *      accelerator personalities use; real M4 and AMD dumps), or a PerformanceStatistics
 *      dictionary with a GPU utilization key ("Device Utilization %", "GPU Activity(%)").
 * The entry's name never counts.
 */
import type { PropertyValue } from '../types';
import type { RegistryNode } from './registry-node';

const NOT_ACCELERATOR_CLASSES = new Set(['IOServiceCompatibility', 'IOKitRegistryCompatibility', 'IOPCIDevice', 'IORegistryEntry', 'IOService']);
const NOT_ACCELERATOR_PATTERN = /Framebuffer|Controller|UserClient/;

const ACCELERATOR_CLASSES = new Set(['IOAccelerator', 'IOGPU', 'AGXFamilyAccelerator', 'IntelAccelerator', 'nvAccelerator']);
const ACCELERATOR_PATTERNS = [/^AGXAccelerator\w*$/, /^AMDRadeonX\d+_\w*Accelerator$/];

const UTILIZATION_KEYS = ['Device Utilization %', 'GPU Activity(%)'];

function isDictionary(value: PropertyValue | undefined): value is Record<string, PropertyValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !('$data' in value && Object.keys(value).length === 1);
}

/** The class of an entry, or for a bare property block the IOClass property it carries. */
export function classNameOf(node: RegistryNode): string | null {
  if (node.className !== null) return node.className;
  const ioClass = node.properties?.IOClass;
  return typeof ioClass === 'string' ? ioClass : null;
}

export function isAccelerator(node: RegistryNode): boolean {
  if (node.inheritance) return node.inheritance.includes('IOAccelerator');
  const className = classNameOf(node);
  if (className !== null) {
    if (NOT_ACCELERATOR_CLASSES.has(className) || NOT_ACCELERATOR_PATTERN.test(className)) return false;
    if (ACCELERATOR_CLASSES.has(className) || ACCELERATOR_PATTERNS.some((pattern) => pattern.test(className))) return true;
  }
  const properties = node.properties ?? {};
  if (properties.IOMatchCategory === 'IOAccelerator') return true;
  const statistics = properties.PerformanceStatistics;
  return isDictionary(statistics) && UTILIZATION_KEYS.some((key) => key in statistics);
}

/**
 * Most-derived first, ending at OSObject. ioreg prints the chain base-first and stops
 * before OSObject (its loop ends there), so the order is reversed and OSObject put back:
 * every registry entry is one. Without inheritance, only the class itself is known.
 */
export function classChainOf(node: RegistryNode): string[] {
  if (node.inheritance) return [...node.inheritance].reverse().concat('OSObject');
  const className = classNameOf(node);
  return className === null ? [] : [className];
}
