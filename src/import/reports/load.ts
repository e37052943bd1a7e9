/**
 * One loader for the commands that judge evidence (explain, diff): a saved iokit-snap/1
 * snapshot (JSON) or any report importReport reads, from a file or from text.
 */
import { readInputFile } from '../../read-input';
import { parseSnapshot } from '../../snapshot-file';
import type { Snapshot } from '../../types';
import { detectReportFormat, importReport } from '.';

/** Snapshot JSON, or a report's text: whichever the text is. `where` names it in errors. */
export function snapshotFromText(text: string, where: string): Snapshot {
  if (text.trimStart().startsWith('{') || detectReportFormat(text) === null) return parseSnapshot(text, where);
  return importReport(text);
}

/** Read a snapshot file or a report file (a regular file, size-capped: see read-input). */
export async function loadSnapshotOrReport(file: string): Promise<Snapshot> {
  return snapshotFromText(await readInputFile(file, 'snapshot or report'), file);
}
