/** Hands each normalized WhatsApp message to the durable inbound store and schedules its chat. */
import type { Queue } from 'bullmq';
import type { InboundMessage } from '../model/inbound.js';
import type { ChatJobData } from './inbound-queue.js';
import { scheduleChats } from './inbound-queue.js';
import type { IngestResult, InboundStore } from './inbound-store.js';

/**
 * The session's side of the inbound queue: hands each normalized message to
 * Redis (durable from then on) and makes sure its chat has a drain job.
 * `aliasesOf` gives the person's addresses in the form chats are keyed by.
 */
export class InboundProducer {
  constructor(
    private readonly store: InboundStore,
    private readonly queue: Queue<ChatJobData>,
    private readonly aliasesOf: (message: InboundMessage) => { pn?: string | undefined; lid?: string | undefined; chatId: string },
  ) {}

  async enqueue(message: InboundMessage, receivedAtMs = Date.now()): Promise<IngestResult> {
    const { pn, lid, chatId } = this.aliasesOf(message);
    const result = await this.store.ingest({ instanceKey: this.store.instanceKey, receivedAtMs, message }, { pn, lid }, chatId);
    if (result.needsJob) await scheduleChats(this.queue, this.store.instanceKey, [result.needsJob]);
    return result;
  }
}
