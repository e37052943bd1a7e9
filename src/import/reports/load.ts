/**
 * One loader for the commands that judge evidence (explain, diff): a saved iokit-snap/1
 * snapshot (JSON) or any report importReport reads, from a file or from text.
 */
import * as fs from 'node:fs/promises';
import { IokitSnapError } from '../../errors';
import { parseSnapshot } from '../../snapshot-file';
import type { Snapshot } from '../../types';
import { detectReportFormat, importReport } from '.';

/** Snapshot JSON, or a report's text: whichever the text is. `where` names it in errors. */
export function snapshotFromText(text: string, where: string): Snapshot {
  if (text.trimStart().startsWith('{') || detectReportFormat(text) === null) return parseSnapshot(text, where);
  return importReport(text);
}

/** Read a snapshot file or a report file. */
export async function loadSnapshotOrReport(file: string): Promise<Snapshot> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    /* c8 ignore next -- EACCES cannot be produced when the tests run as root */
    const denied = code === 'EACCES' || code === 'EPERM';
    throw new IokitSnapError(denied ? 'EPERM' : 'EINVAL', `cannot read snapshot or report ${file}: ${(error as Error).message}`, { cause: error });
  }
  return snapshotFromText(text, file);
}
