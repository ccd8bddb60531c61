/** One BullMQ queue and one worker per process for every instance it runs: each job names its instance and goes to that instance's handler. */
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';

/** What every job of an {@link InstanceJobs} queue carries: the instance it belongs to. */
export interface InstanceJobData {
  instanceKey: string;
}

/** Least time between two logged errors of one queue (the rest are counted). */
const ERROR_LOG_EVERY_MS = 10_000;

export type InstanceJobHandler<D> = (job: Job<D>, token: string | undefined) => Promise<void>;

export interface InstanceJobsOptions {
  connection: Redis;
  /** BullMQ's key prefix (`RedisKeys.bullPrefix`). */
  prefix: string;
  /** The queue's name: one per worker process (its slot). */
  name: string;
  /** Jobs run at once, over every instance of the process. */
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  log: Logger;
}

/**
 * A process's jobs of one kind (inbound chats, outbound conversations), for
 * all its instances: one queue, one BullMQ worker, so the process holds one
 * blocking Redis connection for them whatever the number of instances
 * (a worker per instance held one each). Jobs are only triggers: the events
 * themselves wait in each instance's Redis lists, and each instance's sweep
 * adds the job of every list that holds events. A job whose instance this
 * process does not run (stopped, or moved while the job waited) completes
 * doing nothing; its instance's owner schedules its own.
 *
 * Removed jobs are not kept (`removeOnComplete`, `removeOnFail`); a job
 * fails only on an unexpected error (Redis trouble, a bug), is retried a few
 * times, and is then left to the sweep.
 */
export class InstanceJobs<D extends InstanceJobData> {
  readonly queue: Queue<D>;
  private worker: Worker<D> | undefined;
  private readonly handlers = new Map<string, InstanceJobHandler<D>>();
  private closing: Promise<void> | undefined;
  private warnedAtMs = 0;
  private unlogged = 0;

  constructor(private readonly options: InstanceJobsOptions) {
    this.queue = instanceJobsQueue<D>(options.connection, options.prefix, options.name);
    this.queue.on('error', (err) => this.warn(err, 'queue error'));
  }

  /** Starts taking jobs. Idempotent. */
  start(): void {
    if (this.worker || this.closing) return;
    const o = this.options;
    this.worker = new Worker<D>(o.name, (job, token) => this.run(job, token), {
      connection: o.connection,
      prefix: o.prefix,
      concurrency: o.concurrency,
      lockDuration: o.lockDurationMs,
      stalledInterval: o.stalledIntervalMs,
      maxStalledCount: 1000,
    });
    this.worker.on('error', (err) => this.warn(err, 'queue worker error'));
    this.worker.on('failed', (job, err) => o.log.error({ err, queue: o.name, jobId: job?.id }, 'job failed unexpectedly'));
  }

  /**
   * While Redis is away or switching master, BullMQ reports an error many
   * times a second: the first of a streak is logged, then one line every
   * 10 s with how many were left out.
   */
  private warn(err: Error, msg: string): void {
    const now = Date.now();
    if (now - this.warnedAtMs < ERROR_LOG_EVERY_MS) {
      this.unlogged += 1;
      return;
    }
    this.options.log.warn({ err, queue: this.options.name, ...(this.unlogged > 0 ? { alsoSince: this.unlogged } : {}) }, msg);
    this.warnedAtMs = now;
    this.unlogged = 0;
  }

  /** Routes the instance's jobs to `handler` until the returned function is called. */
  register(instanceKey: string, handler: InstanceJobHandler<D>): () => void {
    this.handlers.set(instanceKey, handler);
    return () => {
      if (this.handlers.get(instanceKey) === handler) this.handlers.delete(instanceKey);
    };
  }

  private run(job: Job<D>, token: string | undefined): Promise<void> {
    const handler = this.handlers.get(job.data.instanceKey);
    return handler ? handler(job, token) : Promise.resolve();
  }

  /** Lets the jobs in progress finish, then closes the worker and the queue. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.worker?.close();
      await this.queue.close();
    })();
    return this.closing;
  }
}

/** The queue of a process's jobs of one kind, for adding jobs to it (also from another process: the primary adds outbound ones). */
export function instanceJobsQueue<D extends InstanceJobData>(connection: Redis, prefix: string, name: string): Queue<D> {
  return new Queue<D>(name, {
    connection,
    prefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'exponential', delay: 1000 } },
  });
}

/** Adds jobs (BullMQ ignores ids that already have one): one job, the usual case, is one script; a bulk add goes through an ioredis pipeline, which costs more to build. */
export async function addJobs<D extends InstanceJobData>(queue: Queue<D>, jobs: Parameters<Queue<D>['addBulk']>[0]): Promise<void> {
  const [only] = jobs;
  if (jobs.length === 1 && only) await queue.add(only.name, only.data, only.opts);
  else if (jobs.length > 1) await queue.addBulk(jobs);
}
