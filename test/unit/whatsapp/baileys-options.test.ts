/** The production driver's history-sync choice: the kinds that carry contacts, LID mappings and the messages the import takes in, never all refused. */
import { proto } from '@whiskeysockets/baileys';
import { PROCESSABLE_HISTORY_TYPES } from '@whiskeysockets/baileys/lib/Defaults/index.js';
import { describe, expect, it } from 'vitest';
import { syncsHistory } from '../../../src/whatsapp/baileys-socket.js';

const T = proto.HistorySync.HistorySyncType;

describe('history sync', () => {
  it('processes the kinds that carry contacts, push names, LID mappings and recent messages, and the answers to an import request; not full history or status', () => {
    expect([T.INITIAL_BOOTSTRAP, T.RECENT, T.PUSH_NAME, T.NON_BLOCKING_DATA, T.ON_DEMAND].map((syncType) => syncsHistory({ syncType }))).toEqual([true, true, true, true, true]);
    expect([T.FULL, T.INITIAL_STATUS_V3].map((syncType) => syncsHistory({ syncType }))).toEqual([false, false]);
  });

  it('never refuses every kind rc14 can process (it then loses the initial LID mappings)', () => {
    expect(PROCESSABLE_HISTORY_TYPES.some((syncType) => syncsHistory({ syncType }))).toBe(true);
  });
});
