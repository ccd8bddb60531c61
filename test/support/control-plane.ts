/** A stand-in for the primary's control plane in HTTP tests: every call fails unless the test gives it an answer. */
import type { ControlPlaneLike } from '../../src/primary/http/operator-routes.js';

export function controlPlane(answers: Partial<ControlPlaneLike> = {}, failure: Error = new Error('not part of this test')): ControlPlaneLike {
  const refused = () => Promise.reject(failure);
  return {
    list: () => Promise.resolve([]),
    create: refused,
    start: refused,
    stop: refused,
    logout: refused,
    call: refused,
    currentQr: () => undefined,
    known: () => Promise.resolve(),
    ...answers,
  };
}
