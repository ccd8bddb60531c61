/** The history import's shared terms: its longest window, its progress target, and the progress it reports. */
import type { HistoryImportStatus } from './instance.js';

/**
 * The longest window an import covers, in days: the id mappings that keep
 * an import from doubling a message (live or imported) are kept 30 days.
 */
export const MAX_IMPORT_DAYS = 30;

/** Who hears about an import's progress: a conversation (privately when an agent asked). */
export interface ImportNotify {
  accountId: number;
  conversationId: number;
  private?: boolean;
}

/** How an import goes, as the worker reports it to the primary: at the start, at each quarter, at the end. */
export interface ImportReport {
  phase: 'start' | 'progress' | 'end';
  status: HistoryImportStatus;
  /** Days of history the import covers. */
  days: number;
  /** Share done, in whole percent. */
  percent: number;
  /** Where the operator who asked for it reads the progress (else the instance's notify conversation). */
  notify?: ImportNotify;
}
